"""The agent's OpenAI client parses streamed events exactly as the stock client does."""

import json

import httpx
import openai
import pytest
from openai.types.responses import ResponseStreamEvent, ResponseTextDeltaEvent

from streaming import agent_runtime
from streaming.model_client import STREAM_EVENT_CLASSES, ModelClient
from tests.standin import Reply, ToolCall


async def _stream_data(standin) -> list[dict]:
    """The JSON of each event of a streamed response, as the stand-in sent it."""
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{standin.base_url}/responses", json={"model": "gpt-test", "input": "hi", "stream": True},
            headers={"authorization": "Bearer sk-test"},
        )
    lines = [line[len("data: "):] for line in response.text.splitlines() if line.startswith("data: ")]
    return [json.loads(line) for line in lines if line != "[DONE]"]


async def test_a_streamed_reply_parses_to_the_same_events(standin) -> None:
    standin.script(Reply(
        text="Grüße — 東京 🎉 `code`.", reasoning="Thinking it over.",
        tool_calls=[ToolCall("calculate", '{"expression": "6*7"}', call_id="call_1")],
    ))
    stock_client, our_client = openai.AsyncOpenAI(api_key="x"), ModelClient(api_key="x")
    data = await _stream_data(standin)
    stock = [stock_client._process_response_data(data=d, cast_to=ResponseStreamEvent, response=None) for d in data]  # type: ignore[arg-type]
    ours = [our_client._process_response_data(data=d, cast_to=ResponseStreamEvent, response=None) for d in data]
    assert [type(e) for e in ours] == [type(e) for e in stock]
    assert ours == stock
    assert {
        "response.created", "response.output_text.delta", "response.reasoning_summary_text.delta",
        "response.function_call_arguments.delta", "response.output_item.done", "response.completed",
    } <= {e.type for e in ours}  # type: ignore[attr-defined]


async def test_the_sdk_streams_the_same_reply_through_it(standin) -> None:
    reply = Reply(text="Hello there, Ada.", reasoning="A greeting.")
    standin.script(reply, reply)
    texts = []
    for client in (openai.AsyncOpenAI(api_key="sk-test", base_url=standin.base_url),
                   ModelClient(api_key="sk-test", base_url=standin.base_url)):
        stream = await client.responses.create(model="gpt-test", input="hi", stream=True)
        texts.append([(e.type, getattr(e, "delta", None)) async for e in stream])
    assert texts[0] == texts[1]
    assert "".join(d for t, d in texts[1] if t == "response.output_text.delta") == "Hello there, Ada."


@pytest.mark.parametrize(
    "data",
    [
        {"type": "response.output_text.delta"},  # fields missing: the stock client's lenient object
        {"type": "response.from_the_future", "delta": "x"},  # a type this client does not know
        {"no_type": True},
    ],
)
def test_what_does_not_validate_goes_the_stock_way(data) -> None:
    stock = openai.AsyncOpenAI(api_key="x")._process_response_data(
        data=data, cast_to=ResponseStreamEvent, response=None  # type: ignore[arg-type]
    )
    ours = ModelClient(api_key="x")._process_response_data(data=data, cast_to=ResponseStreamEvent, response=None)
    assert type(ours) is type(stock) and ours == stock


def test_every_event_class_is_known_by_its_type() -> None:
    assert STREAM_EVENT_CLASSES["response.output_text.delta"] is ResponseTextDeltaEvent
    assert len(STREAM_EVENT_CLASSES) > 40


async def test_the_agent_streams_through_it(standin) -> None:
    assert isinstance(agent_runtime.openai_client(), ModelClient)
    assert isinstance(agent_runtime.openai_client().with_options(timeout=5), ModelClient)
