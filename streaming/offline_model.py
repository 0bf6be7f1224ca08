"""The built-in offline model: the default when no `OPENAI_API_KEY` is configured.

It implements the Agents SDK `Model` interface and streams a deterministic markdown reply
(a heading, a list and a fenced code block) at a steady token rate, clearly labelled offline,
so the site works end to end on a machine with no API key and no network. Asked the time,
or some arithmetic, it calls the built-in tool for it (with a short reasoning summary) and
answers from the tool's result: the agent features work offline too.
"""

import asyncio
import itertools
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, cast

from agents.items import ModelResponse, TResponseInputItem, TResponseStreamEvent
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseReasoningItem,
    ResponseReasoningSummaryPartAddedEvent,
    ResponseReasoningSummaryPartDoneEvent,
    ResponseReasoningSummaryTextDeltaEvent,
    ResponseReasoningSummaryTextDoneEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    ResponseUsage,
)
from openai.types.responses.response_reasoning_item import Summary
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

OFFLINE_MODEL_NAME = "offline"
TOKEN_PATTERN = re.compile(r"\s*\S+|\s+$")
QUOTE_LIMIT = 280


def tokenize(text: str) -> list[str]:
    """Split text into word-sized pieces whose concatenation is exactly `text`."""
    return TOKEN_PATTERN.findall(text)


def last_user_text(input: str | list[TResponseInputItem]) -> str:
    """The text of the newest user turn in a Responses-format input."""
    if isinstance(input, str):
        return input
    for item in reversed(input):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(part.get("text", "")) for part in content)
    return ""


def count_user_turns(input: str | list[TResponseInputItem]) -> int:
    if isinstance(input, str):
        return 1
    return sum(1 for item in input if isinstance(item, dict) and item.get("role") == "user")


def offline_reply(user_text: str, *, turn: int = 1, tps: float = 0) -> str:
    """The offline model's markdown reply to `user_text`: deterministic for equal inputs."""
    said = " ".join(user_text.split())
    if len(said) > QUOTE_LIMIT:
        said = said[: QUOTE_LIMIT - 1] + "…"
    words = len(user_text.split())
    rate = f"about {tps:g} tokens per second" if tps else "as fast as it can"
    return (
        "**Offline model** — no `OPENAI_API_KEY` is configured, so this reply comes from "
        "the built-in offline model, not from a language model.\n\n"
        "### Your message\n\n"
        f"> {said or '(empty)'}\n\n"
        f"That is {words} word{'s' if words != 1 else ''}, turn {turn} of this conversation.\n\n"
        "### What you can try\n\n"
        f"- Watch this reply stream in, {rate}.\n"
        "- Reload the page or switch tabs mid-reply: it carries on where it was.\n"
        "- Press **Stop** to end a reply early; the partial text is kept.\n\n"
        "```python\n"
        "def greet(name: str) -> str:\n"
        '    """Say hello."""\n'
        '    return f"Hello, {name}!"\n'
        "```\n\n"
        "Set `OPENAI_API_KEY` (and optionally `OPENAI_BASE_URL` and `AGENT_MODEL`) to talk to "
        "a real model."
    )


# A question the offline model answers with a tool (when the run has it): the time, or
# arithmetic ("what is (2 + 3) * 7?").
TIME_QUESTION = re.compile(
    r"\bwhat time\b|\btime is it\b|\bwhat(?:'s| is) the (?:time|date)\b|\bcurrent (?:time|date)\b|"
    r"\btoday'?s date\b",
    re.IGNORECASE,
)
ARITHMETIC_QUESTION = re.compile(r"\b(?:calculate|compute|what(?:'s| is)|how much is)\b", re.IGNORECASE)
ARITHMETIC = re.compile(r"\(*-?\d+(?:\.\d+)?\)*(?:\s*(?:\*\*|//|[-+*/%])\s*\(*-?\d+(?:\.\d+)?\)*)+")


@dataclass(frozen=True)
class Plan:
    """What the offline model answers: an optional reasoning summary, then a tool call or text."""

    reasoning: str = ""
    call: tuple[str, str] | None = None  # (tool name, JSON arguments)
    text: str = ""


def plan_for(input: str | list[TResponseInputItem], tools: list[str], *, tps: float) -> Plan:
    """The offline model's answer: with the run's built-in tools it demonstrates a tool call
    (the time, arithmetic), then answers from the tool's result; otherwise `offline_reply`."""
    result = _tool_result(input)
    if result is not None:
        name, output = result
        return Plan(text=(
            f"**Offline model** — the `{name}` tool answered:\n\n> {' '.join(output.split())}\n\n"
            "A language model would phrase this for you; set `OPENAI_API_KEY` to talk to one."
        ))
    said = last_user_text(input)
    if "current_time" in tools and TIME_QUESTION.search(said):
        return Plan(
            reasoning="The user asks for the current time, which I cannot know; the current_time tool can tell.",
            call=("current_time", json.dumps({"timezone": "UTC"})),
        )
    expression = ARITHMETIC.search(said)
    if "calculate" in tools and expression and ARITHMETIC_QUESTION.search(said):
        return Plan(
            reasoning="This is arithmetic; the calculate tool works it out exactly.",
            call=("calculate", json.dumps({"expression": expression.group(0).strip()})),
        )
    return Plan(text=offline_reply(said, turn=count_user_turns(input), tps=tps))


def _tool_result(input: str | list[TResponseInputItem]) -> tuple[str, str] | None:
    """(tool name, output) if the input ends with a tool's result."""
    if isinstance(input, str) or not input:
        return None
    last = input[-1]
    if not (isinstance(last, dict) and last.get("type") == "function_call_output"):
        return None
    names = {i.get("call_id"): i.get("name") for i in input if isinstance(i, dict) and i.get("type") == "function_call"}
    return str(names.get(last.get("call_id"), "tool")), str(last.get("output", ""))


class OfflineModel(Model):
    """A `Model` that streams `plan_for`'s answer at `tps` pieces per second (0: no pacing)."""

    def __init__(self, *, tps: float = 40.0) -> None:
        self.tps = tps

    def _plan(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Plan:
        tools = kwargs["tools"] if "tools" in kwargs else (args[3] if len(args) > 3 else [])
        names = [getattr(t, "name", "") for t in tools or []]
        return plan_for(_input_arg(args, kwargs), names, tps=self.tps)

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        plan = self._plan(args, kwargs)
        output = _output(plan)
        return ModelResponse(
            output=output,
            usage=Usage(requests=1, output_tokens=len(tokenize(plan.text + plan.reasoning))),
            response_id=f"resp_offline_{uuid.uuid4().hex}",
        )

    async def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[TResponseStreamEvent]:
        plan = self._plan(args, kwargs)
        output = _output(plan)
        final = _response(output, plan, status="completed")
        seq = itertools.count()
        delay = 1.0 / self.tps if self.tps > 0 else 0.0
        yield ResponseCreatedEvent(
            type="response.created", response=_response([], plan, status="in_progress").model_copy(update={"id": final.id}),
            sequence_number=next(seq),
        )
        for index, item in enumerate(output):
            if isinstance(item, ResponseReasoningItem):
                events = _reasoning_events(item, index, seq)
            elif isinstance(item, ResponseFunctionToolCall):
                events = _call_events(item, index, seq)
            else:
                events = _message_events(cast(Any, item), index, seq)
            async for event in events:
                if event.type.endswith(".delta"):
                    await asyncio.sleep(delay)
                yield event
        yield ResponseCompletedEvent(type="response.completed", response=final, sequence_number=next(seq))


def _output(plan: Plan) -> list[Any]:
    output: list[Any] = []
    if plan.reasoning:
        output.append(ResponseReasoningItem(
            id=f"rs_offline_{uuid.uuid4().hex}", type="reasoning",
            summary=[Summary(type="summary_text", text=plan.reasoning)],
        ))
    if plan.call:
        name, arguments = plan.call
        output.append(ResponseFunctionToolCall(
            id=f"fc_offline_{uuid.uuid4().hex}", call_id=f"call_offline_{uuid.uuid4().hex[:24]}",
            type="function_call", name=name, arguments=arguments, status="completed",
        ))
    if plan.text:
        output.append(ResponseOutputMessage(
            id=f"msg_offline_{uuid.uuid4().hex}", type="message", role="assistant", status="completed",
            content=[ResponseOutputText(type="output_text", text=plan.text, annotations=[], logprobs=[])],
        ))
    return output


async def _reasoning_events(item: ResponseReasoningItem, index: int, seq: Iterator[int]) -> AsyncIterator[Any]:
    text = item.summary[0].text
    at: dict[str, Any] = {"item_id": item.id, "output_index": index, "summary_index": 0}
    part = {"type": "summary_text", "text": ""}
    yield ResponseOutputItemAddedEvent(
        type="response.output_item.added", item=item.model_copy(update={"summary": []}), output_index=index,
        sequence_number=next(seq),
    )
    yield ResponseReasoningSummaryPartAddedEvent(
        type="response.reasoning_summary_part.added", part=part, sequence_number=next(seq), **at,  # type: ignore[arg-type]
    )
    for piece in tokenize(text):
        yield ResponseReasoningSummaryTextDeltaEvent(
            type="response.reasoning_summary_text.delta", delta=piece, sequence_number=next(seq), **at
        )
    yield ResponseReasoningSummaryTextDoneEvent(
        type="response.reasoning_summary_text.done", text=text, sequence_number=next(seq), **at
    )
    yield ResponseReasoningSummaryPartDoneEvent(
        type="response.reasoning_summary_part.done", part={**part, "text": text},  # type: ignore[arg-type]
        sequence_number=next(seq), **at,
    )
    yield ResponseOutputItemDoneEvent(
        type="response.output_item.done", item=item, output_index=index, sequence_number=next(seq)
    )


async def _call_events(item: ResponseFunctionToolCall, index: int, seq: Iterator[int]) -> AsyncIterator[Any]:
    at: dict[str, Any] = {"item_id": item.id, "output_index": index}
    yield ResponseOutputItemAddedEvent(
        type="response.output_item.added", item=item.model_copy(update={"arguments": "", "status": "in_progress"}),
        output_index=index, sequence_number=next(seq),
    )
    for piece in tokenize(item.arguments):
        yield ResponseFunctionCallArgumentsDeltaEvent(
            type="response.function_call_arguments.delta", delta=piece, sequence_number=next(seq), **at
        )
    yield ResponseFunctionCallArgumentsDoneEvent(
        type="response.function_call_arguments.done", arguments=item.arguments, sequence_number=next(seq), **at
    )
    yield ResponseOutputItemDoneEvent(
        type="response.output_item.done", item=item, output_index=index, sequence_number=next(seq)
    )


async def _message_events(message: ResponseOutputMessage, index: int, seq: Iterator[int]) -> AsyncIterator[Any]:
    part = message.content[0]
    assert isinstance(part, ResponseOutputText)
    common: dict[str, Any] = {"item_id": message.id, "output_index": index, "content_index": 0}
    yield ResponseOutputItemAddedEvent(
        type="response.output_item.added", item=message.model_copy(update={"content": [], "status": "in_progress"}),
        output_index=index, sequence_number=next(seq),
    )
    yield ResponseContentPartAddedEvent(
        type="response.content_part.added", sequence_number=next(seq), **common,
        part=ResponseOutputText(type="output_text", text="", annotations=[], logprobs=[]),
    )
    for token in tokenize(part.text):
        yield ResponseTextDeltaEvent(
            type="response.output_text.delta", delta=token, logprobs=[], sequence_number=next(seq), **common
        )
    yield ResponseTextDoneEvent(
        type="response.output_text.done", text=part.text, logprobs=[], sequence_number=next(seq), **common
    )
    yield ResponseContentPartDoneEvent(
        type="response.content_part.done", part=part, sequence_number=next(seq), **common
    )
    yield ResponseOutputItemDoneEvent(
        type="response.output_item.done", item=message, output_index=index, sequence_number=next(seq)
    )


def _input_arg(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | list[TResponseInputItem]:
    """The `input` argument of `get_response`/`stream_response`, however it was passed."""
    found: str | list[TResponseInputItem] = kwargs["input"] if "input" in kwargs else args[1]
    return found


def _response(output: list[Any], plan: Plan, *, status: str) -> Response:
    output_tokens = len(tokenize(plan.text + plan.reasoning))
    return Response(
        id=f"resp_offline_{uuid.uuid4().hex}",
        created_at=0,
        model=OFFLINE_MODEL_NAME,
        object="response",
        output=output,
        tool_choice="auto",
        tools=[],
        top_p=None,
        parallel_tool_calls=False,
        status=status,  # type: ignore[arg-type]
        usage=ResponseUsage(
            input_tokens=0,
            output_tokens=output_tokens,
            total_tokens=output_tokens,
            input_tokens_details=InputTokensDetails(cached_tokens=0, cache_write_tokens=0),
            output_tokens_details=OutputTokensDetails(reasoning_tokens=len(tokenize(plan.reasoning))),
        ),
    )
