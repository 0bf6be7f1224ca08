"""The built-in tools, and the limits every tool call runs under (in-process, the model
behind the stand-in)."""

from datetime import UTC, datetime

import pytest

from streaming import agent_runtime, tools
from streaming.agent_runtime import HistoryTurn
from tests.standin import Reply, ToolCall


@pytest.mark.parametrize(
    "expression, value",
    [
        ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("7 / 2", 3.5), ("7 // 2", 3), ("-7 % 3", 2),
        ("2 ** 10", 1024), ("-(3 - 5)", 2), ("0.1 + 0.2", 0.1 + 0.2), (" 42 ", 42),
    ],
)
def test_calculate_evaluates_arithmetic(expression: str, value: float) -> None:
    assert tools.evaluate(expression) == value


@pytest.mark.parametrize(
    "expression, problem",
    [
        ("__import__('os').system('true')", "Only numbers"),
        ("x + 1", "Only numbers"),
        ("[1, 2]", "Only numbers"),
        ("'a' * 3", "Only numbers"),
        ("True + 1", "Only numbers"),
        ("1 / 0", "Division by zero"),
        ("9 ** 9999", "Powers are limited"),
        ("10 ** 999 * 10 ** 999", "too large"),
        ("(-8) ** 0.5", "not a real number"),
        ("1 +", "Not an arithmetic expression"),
        ("1" * 201, "longer than 200"),
    ],
)
def test_calculate_refuses_anything_but_bounded_arithmetic(expression: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        tools.evaluate(expression)


def test_current_time_in_a_time_zone() -> None:
    moment = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert tools.now_in("Europe/Paris", now=moment) == (
        "Wednesday 01 July 2026, 14:00:00 CEST (2026-07-01T14:00:00+02:00) in Europe/Paris"
    )
    assert tools.now_in("", now=moment).endswith("in UTC")
    with pytest.raises(ValueError, match="Unknown time zone 'Mars/Olympus'"):
        tools.now_in("Mars/Olympus")
    with pytest.raises(ValueError, match="Unknown time zone"):
        tools.now_in("../../etc/passwd")


async def steps_for(input: list) -> list[agent_runtime.Step]:
    async with agent_runtime.AgentRun(input) as run:
        return [step async for step in run.steps()]


async def test_a_reply_makes_at_most_the_capped_number_of_tool_calls(standin, settings) -> None:
    settings.AGENT_TOOLS = ["streaming.tools.calculate"]
    settings.AGENT_MAX_TOOL_CALLS = 2
    calls = [ToolCall("calculate", f'{{"expression": "{i} + 1"}}') for i in range(3)]
    standin.script(Reply(text="", tool_calls=calls), Reply(text="Done."))
    steps = await steps_for([{"role": "user", "content": "add"}])
    results = [(s.text, s.error) for s in steps if s.kind == "tool_result"]
    assert results == [
        ("0 + 1 = 1", False), ("1 + 1 = 2", False),
        ("Tool call limit reached (2 per reply): answer with what you have.", True),
    ]
    assert "".join(s.text for s in steps if s.kind == "text") == "Done."


async def test_a_long_tool_output_is_cut_for_the_model_and_marked(standin, settings) -> None:
    settings.AGENT_TOOLS = ["tests.agent_tools.echo"]
    settings.AGENT_TOOL_OUTPUT_CHARS = 10
    standin.script(Reply(text="", tool_calls=[ToolCall("echo", '{"text": "0123456789abcdef"}')]), Reply(text="ok"))
    steps = await steps_for([{"role": "user", "content": "echo"}])
    (result,) = [s for s in steps if s.kind == "tool_result"]
    assert (result.text, result.truncated, result.error) == ("0123456789", True, False)
    outputs = [i for i in standin.requests[1].json["input"] if i.get("type") == "function_call_output"]
    assert [o["output"] for o in outputs] == ["0123456789"]


async def test_without_tools_configured_a_key_gives_the_model_none(standin) -> None:
    standin.script(Reply(text="plain"))
    steps = await steps_for([{"role": "user", "content": "hi"}])
    assert [s.kind for s in steps] == ["text"]
    assert standin.requests[0].json.get("tools") in (None, [])


def test_history_gives_finished_tool_calls_back_within_the_budget(settings) -> None:
    settings.AGENT_HISTORY_CHARS = 60
    call = {"type": "tool", "call_id": "c1", "name": "calculate", "arguments": '{"expression": "1+1"}',
            "output": "1+1 = 2", "error": False, "truncated": False}  # fmt: skip
    unfinished = {**call, "call_id": "c2", "output": None}
    thinking = {"type": "reasoning", "text": "hm"}
    turns = [
        HistoryTurn("user", "what is 1+1"),
        HistoryTurn("assistant", "2", steps=(thinking, call, unfinished)),
        HistoryTurn("user", "thanks"),
    ]
    assert agent_runtime.history_input(turns) == [
        {"role": "user", "content": "what is 1+1"},
        {"type": "function_call", "call_id": "c1", "name": "calculate", "arguments": '{"expression": "1+1"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "1+1 = 2"},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "thanks"},
    ]
    settings.AGENT_HISTORY_CHARS = 20  # the call's arguments and output count: the turn no longer fits
    assert agent_runtime.history_input(turns) == [{"role": "user", "content": "thanks"}]


def test_a_logs_steps_are_what_a_reaped_reply_stores() -> None:
    from streaming import events

    log = [
        events.started("r", 1, thread_id="t", model="m"),
        events.reasoning("r", 2, text="First, "),
        events.reasoning("r", 3, text="the clock."),
        events.tool_call("r", 4, call_id="c1", name="current_time"),
        events.tool_arguments("r", 5, call_id="c1", text='{"timezone": '),
        events.tool_arguments("r", 6, call_id="c1", text='"UTC"}'),
        events.tool_result("r", 7, call_id="c1", output="noon", truncated=True),
        events.delta("r", 8, text="It is noon.", tokens=3, token_count=3),
        events.tool_call("r", 9, call_id="c2", name="nap"),  # the worker died during this one
    ]
    assert events.steps_of(log) == [
        {"type": "reasoning", "text": "First, the clock."},
        {"type": "tool", "call_id": "c1", "name": "current_time", "arguments": '{"timezone": "UTC"}',
         "output": "noon", "error": False, "truncated": True},
        {"type": "tool", "call_id": "c2", "name": "nap", "arguments": "", "output": None, "error": False,
         "truncated": False},
    ]  # fmt: skip
