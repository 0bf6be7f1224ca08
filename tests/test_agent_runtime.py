"""The agent runtime over real HTTP to the stand-in OpenAI server, and the offline model."""

import time

import pytest

from streaming import agent_runtime
from streaming.agent_runtime import HistoryTurn, ModelError
from streaming.offline_model import OfflineModel, offline_reply, tokenize
from tests.standin import Reply

TEXT = "Grüße aus Köln — 東京 🎉 and a `code` span.\n\nDone."


async def collect(input) -> list[str]:
    """The text deltas of the agent's reply to `input`."""
    async with agent_runtime.AgentRun(input) as run:
        return [step.text async for step in run.steps() if step.kind == "text"]


@pytest.mark.parametrize("api, path", [("responses", "/v1/responses"), ("chat_completions", "/v1/chat/completions")])
async def test_streams_the_models_text_exactly(standin, settings, api, path) -> None:
    settings.AGENT_API = api
    standin.script(Reply(text=TEXT))
    deltas = await collect([{"role": "user", "content": "hi"}])
    assert "".join(deltas) == TEXT
    assert len(deltas) == len(tokenize(TEXT)) > 5
    (request,) = standin.requests
    assert request.path == path
    assert request.json["model"] == "gpt-test" and request.json["stream"] is True
    assert request.headers["authorization"] == "Bearer sk-test"


async def test_earlier_turns_reach_the_model(standin) -> None:
    standin.script(Reply(text="Your name is Ada."))
    turns = [
        HistoryTurn("user", "My name is Ada."),
        HistoryTurn("assistant", "Nice to meet you, Ada."),
        HistoryTurn("user", "What is my name?"),
    ]
    assert "".join(await collect(agent_runtime.history_input(turns))) == "Your name is Ada."
    sent = standin.requests[0].json
    assert sent["instructions"] == "You are a helpful assistant."
    said = [(item["role"], _text(item["content"])) for item in sent["input"]]
    assert said == [
        ("user", "My name is Ada."),
        ("assistant", "Nice to meet you, Ada."),
        ("user", "What is my name?"),
    ]


async def test_chat_completions_sends_history_as_messages(standin, settings) -> None:
    settings.AGENT_API = "chat_completions"
    settings.AGENT_INSTRUCTIONS = "Be brief."
    standin.script(Reply(text="ok"))
    await collect(agent_runtime.history_input([HistoryTurn("user", "a"), HistoryTurn("assistant", "b"), HistoryTurn("user", "c")]))
    messages = [(m["role"], _text(m["content"])) for m in standin.requests[0].json["messages"]]
    assert messages == [("system", "Be brief."), ("user", "a"), ("assistant", "b"), ("user", "c")]


def _text(content) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content)


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
async def test_rate_limit_before_the_stream_is_a_clear_error(standin, settings, api) -> None:
    settings.AGENT_API = api
    standin.script(Reply(error_status=429))
    with pytest.raises(ModelError, match=r"rate-limiting requests \(HTTP 429\)"):
        await collect([{"role": "user", "content": "hi"}])
    assert len(standin.requests) == 1  # no silent retries that would multiply the bill


async def test_server_error_is_a_clear_error(standin) -> None:
    standin.script(Reply(error_status=500))
    with pytest.raises(ModelError, match=r"returned an error \(HTTP 500\)"):
        await collect([{"role": "user", "content": "hi"}])


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
async def test_dropped_stream_keeps_the_text_so_far_and_says_why(standin, settings, api) -> None:
    settings.AGENT_API = api
    standin.script(Reply(text="one two three four five six", drop_after=3))
    received: list[str] = []
    with pytest.raises(ModelError, match="connection to the model provider was lost"):
        async with agent_runtime.AgentRun([{"role": "user", "content": "hi"}]) as run:
            async for step in run.steps():
                received.append(step.text)
    assert "".join(received) == "one two three"


async def test_slow_first_token_still_arrives(standin) -> None:
    standin.script(Reply(text="late but here", first_token_delay=0.3))
    started = time.monotonic()
    assert "".join(await collect([{"role": "user", "content": "hi"}])) == "late but here"
    assert time.monotonic() - started >= 0.3


async def test_cancel_closes_the_upstream_stream(standin) -> None:
    standin.script(Reply(text=" ".join(["word"] * 200), tps=50))
    received = []
    async with agent_runtime.AgentRun([{"role": "user", "content": "hi"}]) as run:
        async for step in run.steps():
            received.append(step.text)
            if len(received) == 3:
                run.cancel()
    assert 3 <= len(received) < 200
    record = standin.wait_closed_early(0, timeout=5)
    assert record.stream_closed_early and not record.finished


def test_history_budget_keeps_the_newest_turns(settings) -> None:
    settings.AGENT_HISTORY_CHARS = 25
    settings.AGENT_HISTORY_MESSAGES = 10
    turns = [
        HistoryTurn("user", "first question"),
        HistoryTurn("assistant", "first answer"),
        HistoryTurn("user", "second"),
        HistoryTurn("assistant", "second answer"),
        HistoryTurn("user", "third"),
    ]
    kept = agent_runtime.history_input(turns)
    # 5 + 13 + 6 = 24 characters fit; the next older turn would not, and a kept history never
    # starts with an assistant turn.
    assert kept == [{"role": "user", "content": "second"}, {"role": "assistant", "content": "second answer"}, {"role": "user", "content": "third"}]
    settings.AGENT_HISTORY_MESSAGES = 2
    assert agent_runtime.history_input(turns) == [{"role": "user", "content": "third"}]


def test_history_always_keeps_the_new_message_even_over_budget(settings) -> None:
    settings.AGENT_HISTORY_CHARS = 3
    kept = agent_runtime.history_input([HistoryTurn("user", "old"), HistoryTurn("user", "a long new message")])
    assert kept == [{"role": "user", "content": "a long new message"}]


async def test_offline_model_streams_labelled_markdown(settings) -> None:
    settings.OPENAI_API_KEY = ""
    deltas = await collect([{"role": "user", "content": "Explain streaming"}])
    text = "".join(deltas)
    assert text == offline_reply("Explain streaming", turn=1, tps=0)
    assert text.startswith("**Offline model**")
    assert "### Your message" in text and "> Explain streaming" in text
    assert "\n- Watch this reply stream in" in text
    assert "```python\ndef greet(name: str) -> str:" in text and text.count("```") == 2
    assert len(deltas) == len(tokenize(text))
    assert agent_runtime.model_name() == "offline"


async def test_offline_model_paces_tokens_at_its_rate() -> None:
    model = OfflineModel(tps=200)
    started = time.monotonic()
    deltas = [
        e.delta
        async for e in model.stream_response(
            None, [{"role": "user", "content": "x"}], None, [], None, [], None,
            previous_response_id=None, conversation_id=None, prompt=None,
        )
        if e.type == "response.output_text.delta"
    ]
    elapsed = time.monotonic() - started
    assert len(deltas) > 50
    assert elapsed >= len(deltas) / 200 * 0.9


def test_offline_reply_counts_turns_and_quotes_briefly() -> None:
    reply = offline_reply("word " * 200, turn=3)
    assert "turn 3 of this conversation" in reply and "That is 200 words" in reply
    assert "…" in reply.split("\n\n")[2]
