"""Tests for the stand-in OpenAI server, driven through the real openai client and Agents SDK."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import agents
import openai
import pytest
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    ReasoningItem,
    Runner,
    function_tool,
)
from openai.types.responses import (
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseReasoningSummaryTextDeltaEvent,
    ResponseTextDeltaEvent,
)

from tests.standin import (
    Reply,
    StandinServer,
    ToolCall,
    control_requests,
    control_reset,
    control_script,
    split_tokens,
)

MULTIBYTE = "héllo 世界 🎉 done"
REPO = Path(__file__).resolve().parent.parent

agents.set_tracing_disabled(True)


@pytest.fixture(scope="module")
def module_server() -> Iterator[StandinServer]:
    with StandinServer() as standin:
        yield standin


@pytest.fixture
def server(module_server: StandinServer) -> Iterator[StandinServer]:
    module_server.reset()
    yield module_server
    module_server.reset()


@pytest.fixture
async def client(server: StandinServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=server.base_url, api_key="test", max_retries=0
    ) as async_client:
        yield async_client


async def stream_response_text(client: openai.AsyncOpenAI, **kwargs: object) -> str:
    stream = await client.responses.create(model="gpt-test", input="hi", stream=True, **kwargs)
    parts = []
    async for event in stream:
        if event.type == "response.output_text.delta":
            parts.append(event.delta)
    return "".join(parts)


@pytest.mark.parametrize(
    "text", [MULTIBYTE, "trailing space  ", "  leading", "", "   ", "a\n\nb\t", "one"]
)
def test_split_tokens_round_trips(text: str) -> None:
    tokens = split_tokens(text)
    assert "".join(tokens) == text
    assert all(tokens)


def test_split_tokens_pieces() -> None:
    assert split_tokens(MULTIBYTE) == ["héllo", " 世界", " 🎉", " done"]
    assert Reply(text="x y", tokens=["x", " ", "y"]).pieces() == ["x", " ", "y"]


def test_base_url_shape(server: StandinServer) -> None:
    assert server.base_url.startswith("http://127.0.0.1:")
    assert server.base_url.endswith("/v1")
    assert server.port > 0


async def test_responses_stream_event_order_and_text(
    server: StandinServer, client: openai.AsyncOpenAI
) -> None:
    server.script(Reply(text=MULTIBYTE))
    stream = await client.responses.create(model="gpt-test", input="hello there", stream=True)
    events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 4,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e for e in events if isinstance(e, ResponseTextDeltaEvent)]
    assert "".join(d.delta for d in deltas) == MULTIBYTE
    assert {(d.output_index, d.content_index, d.item_id) for d in deltas} == {
        (0, 0, events[2].item.id)
    }
    assert events[8].text == MULTIBYTE
    completed = events[-1].response
    assert completed.status == "completed"
    assert completed.model == "gpt-test"
    assert completed.output_text == MULTIBYTE
    assert completed.usage is not None
    assert completed.usage.output_tokens == 4
    assert completed.usage.input_tokens > 0
    assert completed.usage.total_tokens == completed.usage.input_tokens + 4
    record = server.wait_done()
    assert record.finished and not record.stream_closed_early
    assert record.tokens_sent == 4


async def test_responses_non_stream(server: StandinServer, client: openai.AsyncOpenAI) -> None:
    server.script(Reply(text="plain answer"))
    response = await client.responses.create(model="gpt-x", input="hi")
    assert response.output_text == "plain answer"
    assert response.model == "gpt-x"
    assert response.usage is not None and response.usage.output_tokens == 2


async def test_default_reply_and_queue_order(
    server: StandinServer, client: openai.AsyncOpenAI
) -> None:
    server.default_reply = Reply(text="fallback")
    server.script(Reply(text="first"), Reply(text="second"))
    got = [await stream_response_text(client) for _ in range(3)]
    assert got == ["first", "second", "fallback"]
    server.reset()
    assert await stream_response_text(client) == Reply().text


async def test_chat_completions_stream(server: StandinServer, client: openai.AsyncOpenAI) -> None:
    server.script(Reply(text=MULTIBYTE))
    stream = await client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == MULTIBYTE
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert {c.model for c in chunks} == {"gpt-test"}


async def test_chat_completions_non_stream(
    server: StandinServer, client: openai.AsyncOpenAI
) -> None:
    server.script(Reply(text="plain chat"))
    completion = await client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == "plain chat"
    assert completion.choices[0].finish_reason == "stop"


async def collect_agent_deltas(model: agents.Model) -> str:
    agent = Agent(name="a", instructions="x", model=model)
    result = Runner.run_streamed(agent, "hi")
    parts = []
    async for event in result.stream_events():
        if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent):
            parts.append(event.data.delta)
    return "".join(parts)


async def test_agents_sdk_responses_model(
    server: StandinServer, client: openai.AsyncOpenAI
) -> None:
    server.script(Reply(text=MULTIBYTE, tps=200))
    model = OpenAIResponsesModel(model="gpt-test", openai_client=client)
    assert await collect_agent_deltas(model) == MULTIBYTE
    (record,) = server.requests
    assert record.path == "/v1/responses"
    assert record.json["instructions"] == "x"
    assert record.json["model"] == "gpt-test"


async def test_agents_sdk_chat_completions_model(
    server: StandinServer, client: openai.AsyncOpenAI
) -> None:
    server.script(Reply(text=MULTIBYTE, tps=200))
    model = OpenAIChatCompletionsModel(model="gpt-test", openai_client=client)
    assert await collect_agent_deltas(model) == MULTIBYTE
    (record,) = server.requests
    assert record.path == "/v1/chat/completions"
    assert record.json["messages"][0] == {"role": "system", "content": "x"}


async def test_agents_sdk_does_not_retry_by_default(
    server: StandinServer, client: openai.AsyncOpenAI
) -> None:
    server.script(Reply(error_status=500), Reply(text="should not be used"))
    model = OpenAIResponsesModel(model="gpt-test", openai_client=client)
    with pytest.raises(openai.InternalServerError):
        await collect_agent_deltas(model)
    assert len(server.requests) == 1


async def test_rate_limit_before_stream(server: StandinServer, client: openai.AsyncOpenAI) -> None:
    server.script(Reply(error_status=429, error_message="slow down"))
    with pytest.raises(openai.RateLimitError) as info:
        await client.responses.create(model="gpt-test", input="hi", stream=True)
    assert info.value.status_code == 429
    assert info.value.code == "rate_limit_exceeded"
    assert "slow down" in info.value.message
    assert "retry-after" not in info.value.response.headers


async def test_server_error_before_stream(
    server: StandinServer, client: openai.AsyncOpenAI
) -> None:
    server.script(Reply(error_status=500))
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    assert len(server.requests) == 1


async def test_each_request_consumes_one_reply_even_with_retries(server: StandinServer) -> None:
    server.script(Reply(error_status=500), Reply(text="second try"))
    async with openai.AsyncOpenAI(
        base_url=server.base_url, api_key="test", max_retries=1
    ) as retrying:
        assert await stream_response_text(retrying) == "second try"
    assert len(server.requests) == 2


async def test_drop_after_responses(server: StandinServer, client: openai.AsyncOpenAI) -> None:
    server.script(Reply(text="one two three four five", drop_after=3))
    stream = await client.responses.create(model="gpt-test", input="hi", stream=True)
    deltas: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        async for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
    assert deltas == ["one", " two", " three"]
    record = server.wait_done()
    assert record.tokens_sent == 3
    assert not record.finished and not record.stream_closed_early


async def test_drop_after_chat_completions(
    server: StandinServer, client: openai.AsyncOpenAI
) -> None:
    server.script(Reply(text="one two three four five", drop_after=3))
    stream = await client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    deltas: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                deltas.append(chunk.choices[0].delta.content)
    assert deltas == ["one", " two", " three"]
    assert server.wait_done().tokens_sent == 3


async def test_client_closing_stream_is_recorded(
    server: StandinServer, client: openai.AsyncOpenAI
) -> None:
    server.script(Reply(text="word " * 200, tps=50))
    stream = await client.responses.create(model="gpt-test", input="hi", stream=True)
    seen = 0
    async for event in stream:
        if event.type == "response.output_text.delta":
            seen += 1
            if seen == 3:
                break
    await stream.close()
    record = await asyncio.to_thread(server.wait_closed_early, 0, 2)
    assert record.stream_closed_early and not record.finished
    assert 3 <= record.tokens_sent < 100
    assert record.done or server.wait_done(0, 2).done


async def test_pacing_and_first_token_delay(
    server: StandinServer, client: openai.AsyncOpenAI
) -> None:
    server.script(Reply(text="a b c d e f", tps=50, first_token_delay=0.1))
    started = time.monotonic()
    stream = await client.responses.create(model="gpt-test", input="hi", stream=True)
    arrivals = []
    async for event in stream:
        if event.type == "response.output_text.delta":
            arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 6
    assert arrivals[0] >= 0.1  # first_token_delay
    assert arrivals[-1] >= 0.1 + 5 / 50  # the server sends token i at start + delay + i / tps


async def test_recording_captures_request(
    server: StandinServer, client: openai.AsyncOpenAI
) -> None:
    await client.responses.create(
        model="gpt-test",
        input=[{"role": "user", "content": "what is up?"}],
        stream=True,
        extra_headers={"X-Custom": "yes"},
    )
    await client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hello chat"}]
    )
    first, second = server.wait_requests(2)
    assert (first.method, first.path, first.stream) == ("POST", "/v1/responses", True)
    assert first.json["input"] == [{"role": "user", "content": "what is up?"}]
    assert first.headers["authorization"] == "Bearer test"
    assert first.headers["x-custom"] == "yes"
    assert second.json["messages"] == [{"role": "user", "content": "hello chat"}]
    assert second.stream is False and server.wait_done(1).finished


async def test_chatkit_sessions(server: StandinServer, client: openai.AsyncOpenAI) -> None:
    session = await client.beta.chatkit.sessions.create(user="user-42", workflow={"id": "wf_abc"})
    assert session.id.startswith("cksess_")
    assert session.client_secret.startswith("ek_")
    assert abs(session.expires_at - (time.time() + 600)) < 5
    assert session.status == "active"
    assert session.user == "user-42"
    assert session.workflow.id == "wf_abc"
    cancelled = await client.beta.chatkit.sessions.cancel(session.id)
    assert cancelled.id == session.id and cancelled.status == "cancelled"
    create, cancel = server.requests
    assert create.path == "/v1/chatkit/sessions"
    assert create.json["user"] == "user-42"
    assert create.headers["openai-beta"] == "chatkit_beta=v1"
    assert cancel.path == f"/v1/chatkit/sessions/{session.id}/cancel"
    with pytest.raises(openai.NotFoundError):
        await client.beta.chatkit.sessions.cancel("cksess_missing")


async def test_chatkit_scripted_errors(server: StandinServer, client: openai.AsyncOpenAI) -> None:
    server.script(Reply(error_status=500), Reply(error_status=429))
    with pytest.raises(openai.InternalServerError):
        await client.beta.chatkit.sessions.create(user="u", workflow={"id": "wf"})
    with pytest.raises(openai.RateLimitError):
        await client.beta.chatkit.sessions.create(user="u", workflow={"id": "wf"})
    assert [r.json["user"] for r in server.requests] == ["u", "u"]


def test_unknown_path_is_openai_shaped_404(server: StandinServer) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(server.base_url + "/embeddings", data=b"{}", timeout=5)
    assert info.value.code == 404
    body = json.loads(info.value.read())
    assert set(body["error"]) >= {"message", "type", "code"}


def test_sync_client(server: StandinServer) -> None:
    server.script(Reply(text=MULTIBYTE))
    with (
        openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0) as sync_client,
        sync_client.responses.create(model="gpt-test", input="hi", stream=True) as stream,
    ):
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
    assert text == MULTIBYTE


async def test_http_control_api(server: StandinServer, client: openai.AsyncOpenAI) -> None:
    await asyncio.to_thread(
        control_script, server.base_url, Reply(text="from outside"), default=Reply(text="dflt")
    )
    assert await stream_response_text(client) == "from outside"
    assert await stream_response_text(client) == "dflt"
    recorded = await asyncio.to_thread(control_requests, server.base_url)
    assert [r["path"] for r in recorded] == ["/v1/responses"] * 2
    assert recorded[0]["json"]["input"] == "hi" and recorded[0]["finished"] is True
    await asyncio.to_thread(control_script, server.base_url, {"text": "raw dict", "tps": 0})
    assert await stream_response_text(client) == "raw dict"
    await asyncio.to_thread(control_reset, server.base_url)
    assert server.requests == []
    assert server.default_reply == Reply()


async def test_stamp_tokens(server: StandinServer, client: openai.AsyncOpenAI) -> None:
    await asyncio.to_thread(
        control_script, server.base_url, {"tokens": ["x"] * 5, "tps": 50, "stamp_tokens": True}
    )
    stream = await client.responses.create(model="gpt-test", input="hi", stream=True)
    deltas, done_text = [], None
    async for event in stream:
        if event.type == "response.output_text.delta":
            deltas.append((event.delta, time.time()))
        elif event.type == "response.output_text.done":
            done_text = event.text
    assert [d.split(":")[0] for d, _ in deltas] == ["0", "1", "2", "3", "4"]
    stamps = [float(d.split(":")[1]) for d, _ in deltas]
    assert all(d.endswith(" ") for d, _ in deltas)
    assert all(
        0 <= received - stamp < 1 for stamp, (_, received) in zip(stamps, deltas, strict=True)
    )
    assert stamps[-1] - stamps[0] >= 4 / 50 - 0.01  # stamped when sent, not when scripted
    assert done_text == "".join(d for d, _ in deltas)
    server.script(Reply(text="a b c", stamp_tokens=True))
    chunks = await client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
    assert [t.split(":")[0] for t in text.split()] == ["0", "1", "2"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_cli_subprocess() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.standin", "--port", str(port), "--text", MULTIBYTE],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout=10)
        base_url = f"http://127.0.0.1:{port}/v1"
        assert line == [f"standin listening on {base_url}\n"]
        async with openai.AsyncOpenAI(
            base_url=base_url, api_key="test", max_retries=0
        ) as cli_client:
            assert await stream_response_text(cli_client) == MULTIBYTE
            await asyncio.to_thread(control_script, base_url, Reply(text="scripted remotely"))
            assert await stream_response_text(cli_client) == "scripted remotely"
        assert len(await asyncio.to_thread(control_requests, base_url)) == 2
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


# ---------------------------------------------------------------------- tools and reasoning
WEATHER_ARGS = '{"city": "Paris", "unit": "celsius"}'
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}


def weather_call(**kwargs: object) -> Reply:
    """A reply that thinks, then asks for get_weather and nothing else."""
    call = ToolCall("get_weather", WEATHER_ARGS, call_id="call_weather")
    return Reply(text="", reasoning="The user wants the weather.", tool_calls=[call], **kwargs)


def test_tool_call_pieces_and_control_round_trip() -> None:
    call = ToolCall("f", WEATHER_ARGS)
    assert call.call_id.startswith("call_") and call.call_id != ToolCall("f").call_id
    assert "".join(call.chunks()) == WEATHER_ARGS and len(call.chunks()) == 4
    assert ToolCall("f", "{}").chunks() == ["{", "}"]
    assert ToolCall("f", "[1,2]", pieces=["[1", ",2]"]).chunks() == ["[1", ",2]"]
    with pytest.raises(ValueError, match="pieces"):
        ToolCall("f", "{}", pieces=["{"])
    reply = Reply(text="", reasoning="hmm", tool_calls=[call, ToolCall("g", pieces=["{", "}"])])
    rebuilt = Reply(**json.loads(json.dumps(dataclasses.asdict(reply))))
    assert rebuilt == reply and isinstance(rebuilt.tool_calls[0], ToolCall)


async def test_control_api_scripts_tool_calls(
    server: StandinServer, client: openai.AsyncOpenAI
) -> None:
    await asyncio.to_thread(control_script, server.base_url, weather_call())
    await asyncio.to_thread(
        control_script, server.base_url, {"text": "", "tool_calls": [{"name": "raw"}]}
    )
    first = await client.responses.create(model="gpt-test", input="hi")
    second = await client.responses.create(model="gpt-test", input="hi")
    assert [i.type for i in first.output] == ["reasoning", "function_call"]
    assert (first.output[1].call_id, first.output[1].arguments) == ("call_weather", WEATHER_ARGS)
    assert [(i.type, i.name, i.arguments) for i in second.output] == [
        ("function_call", "raw", "{}")
    ]
    bad = {"text": "", "tool_calls": [{"name": "x", "bogus": 1}]}
    with pytest.raises(urllib.error.HTTPError) as info:
        await asyncio.to_thread(control_script, server.base_url, bad)
    assert info.value.code == 400


async def test_responses_stream_reasoning_function_calls_then_message(
    server: StandinServer, client: openai.AsyncOpenAI
) -> None:
    calls = [
        ToolCall("get_weather", WEATHER_ARGS, call_id="call_a"),
        ToolCall("get_time", '{"tz": "CET"}', call_id="call_b", pieces=['{"tz":', ' "CET"}']),
    ]
    server.script(Reply(text="Let me check.", reasoning="Two lookups.", tool_calls=calls))
    stream = await client.responses.create(
        model="gpt-test", input="hi", tools=[WEATHER_TOOL], stream=True
    )
    events = [event async for event in stream]
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",  # 0: reasoning
        "response.reasoning_summary_part.added",
        *["response.reasoning_summary_text.delta"] * 2,
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",  # 1: get_weather
        *["response.function_call_arguments.delta"] * 4,
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",  # 2: get_time
        *["response.function_call_arguments.delta"] * 2,
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",  # 3: the message
        "response.content_part.added",
        *["response.output_text.delta"] * 3,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    added = [e for e in events if e.type == "response.output_item.added"]
    done = [e for e in events if e.type == "response.output_item.done"]
    assert [e.output_index for e in added] == [e.output_index for e in done] == [0, 1, 2, 3]
    assert [e.item.type for e in added] == [
        "reasoning",
        "function_call",
        "function_call",
        "message",
    ]
    reasoning, weather = added[0].item, added[1].item
    assert reasoning.id.startswith("rs_") and reasoning.summary == []
    assert weather.id.startswith("fc_") and weather.status == "in_progress"
    assert (weather.call_id, weather.name, weather.arguments) == ("call_a", "get_weather", "")
    assert done[0].item.summary[0].text == "Two lookups."
    assert done[1].item.model_dump(exclude_none=True) == {
        **weather.model_dump(exclude_none=True), "arguments": WEATHER_ARGS, "status": "completed"
    }  # fmt: skip

    summary = [e for e in events if e.type.startswith("response.reasoning_summary")]
    assert {(e.item_id, e.output_index, e.summary_index) for e in summary} == {(reasoning.id, 0, 0)}
    assert summary[0].part.model_dump() == {"type": "summary_text", "text": ""}
    assert "".join(e.delta for e in summary if e.type.endswith(".delta")) == "Two lookups."
    assert summary[-2].text == summary[-1].part.text == "Two lookups."

    deltas = [e for e in events if e.type == "response.function_call_arguments.delta"]
    dones = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [(e.item_id, e.output_index, e.arguments) for e in dones] == [
        (weather.id, 1, WEATHER_ARGS), (added[2].item.id, 2, '{"tz": "CET"}')
    ]  # fmt: skip
    assert {e.item_id for e in deltas if e.output_index == 1} == {weather.id}
    assert "".join(e.delta for e in deltas if e.output_index == 1) == WEATHER_ARGS
    assert [e.delta for e in deltas if e.output_index == 2] == ['{"tz":', ' "CET"}']

    completed = events[-1].response
    assert [i.type for i in completed.output] == [e.item.type for e in done]
    assert [i.id for i in completed.output] == [e.item.id for e in added]
    assert completed.output_text == "Let me check."
    assert completed.tools[0].name == "get_weather"
    assert completed.usage.output_tokens == 2 + 4 + 2 + 3
    assert completed.usage.output_tokens_details.reasoning_tokens == 2
    assert server.wait_done().tokens_sent == 3  # text tokens only


async def test_responses_stream_helper_accepts_function_call_only_reply(
    server: StandinServer, client: openai.AsyncOpenAI
) -> None:
    server.script(weather_call())
    async with client.responses.stream(
        model="gpt-test", input="hi", tools=[WEATHER_TOOL]
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert "response.content_part.added" not in kinds
    assert [i.type for i in final.output] == ["reasoning", "function_call"]
    assert final.output[1].arguments == WEATHER_ARGS and final.output_text == ""


async def test_responses_non_stream_with_reasoning_and_tool_call(
    server: StandinServer, client: openai.AsyncOpenAI
) -> None:
    server.script(weather_call())
    response = await client.responses.create(model="gpt-test", input="hi")
    reasoning, call = response.output
    assert reasoning.type == "reasoning"
    assert reasoning.summary[0].text == "The user wants the weather."
    assert call.type == "function_call" and call.status == "completed"
    assert (call.call_id, call.name, call.arguments) == (
        "call_weather", "get_weather", WEATHER_ARGS
    )  # fmt: skip
    assert response.usage.output_tokens == 5 + 4


async def test_chat_completions_stream_reasoning_and_tool_calls(
    server: StandinServer, client: openai.AsyncOpenAI
) -> None:
    calls = [
        ToolCall("get_weather", WEATHER_ARGS, call_id="call_a"),
        ToolCall("get_time", call_id="call_b"),
    ]
    server.script(Reply(text="Let me check.", reasoning="Two lookups.", tool_calls=calls))
    stream = await client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    deltas = [c.choices[0].delta.model_dump(exclude_none=True) for c in chunks if c.choices]
    assert deltas == [
        {"role": "assistant"},  # content: null, as when a reply starts with something else
        {"reasoning_content": "Two"},
        {"reasoning_content": " lookups."},
        {"tool_calls": [
            {"index": 0, "id": "call_a", "type": "function",
             "function": {"name": "get_weather", "arguments": ""}},
        ]},
        *[{"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in calls[0].chunks()],
        {"tool_calls": [
            {"index": 1, "id": "call_b", "type": "function",
             "function": {"name": "get_time", "arguments": ""}},
        ]},
        {"tool_calls": [{"index": 1, "function": {"arguments": "{"}}]},
        {"tool_calls": [{"index": 1, "function": {"arguments": "}"}}]},
        {"content": "Let"},
        {"content": " me"},
        {"content": " check."},
        {},
    ]  # fmt: skip
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage.completion_tokens == 2 + 4 + 2 + 3
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens == 2


async def test_chat_completions_stream_helper_accumulates_tool_calls(
    server: StandinServer, client: openai.AsyncOpenAI
) -> None:
    server.script(weather_call())
    async with client.chat.completions.stream(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        final = await stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_weather", "get_weather", WEATHER_ARGS
    )  # fmt: skip
    assert choice.message.reasoning_content == "The user wants the weather."


async def test_chat_completions_non_stream_tool_calls(
    server: StandinServer, client: openai.AsyncOpenAI
) -> None:
    server.script(weather_call())
    completion = await client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}]
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert choice.message.tool_calls[0].model_dump() == {
        "id": "call_weather", "type": "function",
        "function": {"name": "get_weather", "arguments": WEATHER_ARGS},
    }  # fmt: skip
    assert choice.message.reasoning_content == "The user wants the weather."


async def test_reasoning_and_arguments_are_paced_like_tokens(
    server: StandinServer, client: openai.AsyncOpenAI
) -> None:
    server.script(weather_call(tps=50, first_token_delay=0.15))
    started = time.monotonic()
    stream = await client.responses.create(model="gpt-test", input="hi", stream=True)
    arrivals: dict[str, list[float]] = {}
    async for event in stream:
        arrivals.setdefault(event.type, []).append(time.monotonic() - started)
    assert arrivals["response.created"][0] < 0.15  # the stream opens before the delay
    reasoning = arrivals["response.reasoning_summary_text.delta"]
    arguments = arrivals["response.function_call_arguments.delta"]
    assert reasoning[0] >= 0.15  # first_token_delay comes before the first piece of any kind
    assert arguments[-1] >= 0.15 + 8 / 50  # 5 reasoning deltas + 4 argument pieces, one pace


async def test_drop_after_a_function_call_only_reply_cuts_before_completion(
    server: StandinServer, client: openai.AsyncOpenAI
) -> None:
    server.script(weather_call(drop_after=0))
    stream = await client.responses.create(model="gpt-test", input="hi", stream=True)
    kinds: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        async for event in stream:
            kinds.append(event.type)
    assert kinds[-1] == "response.output_item.done" and "response.completed" not in kinds
    record = server.wait_done()
    assert not record.finished and record.tokens_sent == 0


# The Agents SDK end to end: a tool call, the tool runs, the follow-up request, the answer.
weather_calls: list[str] = []


@function_tool
def get_weather(city: str, unit: str) -> str:
    """The weather in a city."""
    weather_calls.append(city)
    return f"Sunny in {city}, 21 degrees {unit}"


@pytest.mark.parametrize("model_class", [OpenAIResponsesModel, OpenAIChatCompletionsModel])
async def test_agents_sdk_streams_tool_call_and_continues_after_its_output(
    server: StandinServer, client: openai.AsyncOpenAI, model_class: type
) -> None:
    weather_calls.clear()
    server.script(weather_call(tps=500), Reply(text="It is sunny in Paris.", tps=500))
    agent = Agent(
        name="a",
        instructions="x",
        model=model_class(model="gpt-test", openai_client=client),
        tools=[get_weather],
    )
    result = Runner.run_streamed(agent, "Weather in Paris?", max_turns=3)
    arguments, reasoning, announced, timeline = [], [], [], []
    async for event in result.stream_events():
        if event.type == "raw_response_event":
            timeline.append(event.data.type)
            if event.data.type == "response.output_item.added":
                announced.append(event.data.item.model_dump(include={"type", "call_id", "name"}))
            elif isinstance(event.data, ResponseFunctionCallArgumentsDeltaEvent):
                arguments.append(event.data.delta)
            elif isinstance(event.data, ResponseReasoningSummaryTextDeltaEvent):
                reasoning.append(event.data.delta)
        elif event.type == "run_item_stream_event":
            timeline.append(event.name)
            if isinstance(event.item, ReasoningItem):
                assert event.item.raw_item.summary[0].text == "The user wants the weather."

    assert weather_calls == ["Paris"]
    assert result.final_output == "It is sunny in Paris."
    assert "".join(arguments) == WEATHER_ARGS and len(arguments) == 4
    # the call's id and name come with its output_item.added; argument deltas carry neither
    assert {"type": "function_call", "call_id": "call_weather", "name": "get_weather"} in announced
    assert "".join(reasoning) == "The user wants the weather."  # Chat: via reasoning_content
    run_items = [t for t in timeline if not t.startswith("response.")]
    assert run_items == [
        "reasoning_item_created", "tool_called", "tool_output", "message_output_created"
    ]  # fmt: skip
    # the run items of a turn are emitted once its response has completed, not as it streams
    assert timeline.index("tool_called") > timeline.index("response.completed")

    first, second = server.wait_requests(2)
    if model_class is OpenAIResponsesModel:
        assert first.json["tools"][0]["name"] == "get_weather"
        call, output = second.json["input"][-2:]
        assert {k: call[k] for k in ("type", "call_id", "name", "arguments")} == {
            "type": "function_call", "call_id": "call_weather", "name": "get_weather",
            "arguments": WEATHER_ARGS,
        }  # fmt: skip
        assert output == {
            "type": "function_call_output",
            "call_id": "call_weather",
            "output": "Sunny in Paris, 21 degrees celsius",
        }
        assert second.json["input"][1]["type"] == "reasoning"  # replayed as given
    else:
        assert first.json["tools"][0]["function"]["name"] == "get_weather"
        assistant, tool = second.json["messages"][-2:]
        assert assistant["role"] == "assistant" and assistant["content"] is None
        assert assistant["tool_calls"] == [
            {"id": "call_weather", "type": "function",
             "function": {"name": "get_weather", "arguments": WEATHER_ARGS}},
        ]  # fmt: skip
        assert "reasoning_content" not in assistant  # replayed for DeepSeek models only
        assert tool == {
            "role": "tool",
            "tool_call_id": "call_weather",
            "content": "Sunny in Paris, 21 degrees celsius",
        }


@pytest.mark.parametrize("model_class", [OpenAIResponsesModel, OpenAIChatCompletionsModel])
async def test_agents_sdk_runs_tool_call_without_streaming(
    server: StandinServer, client: openai.AsyncOpenAI, model_class: type
) -> None:
    weather_calls.clear()
    server.script(weather_call(), Reply(text="Sunny."))
    agent = Agent(
        name="a",
        instructions="x",
        model=model_class(model="gpt-test", openai_client=client),
        tools=[get_weather],
    )
    result = await Runner.run(agent, "Weather in Paris?", max_turns=3)
    assert weather_calls == ["Paris"] and result.final_output == "Sunny."
    assert [type(i).__name__ for i in result.new_items] == [
        "ReasoningItem", "ToolCallItem", "ToolCallOutputItem", "MessageOutputItem"
    ]  # fmt: skip
    assert [r.stream for r in server.requests] == [False, False]
