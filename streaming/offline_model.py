"""The built-in offline model: the default when no `OPENAI_API_KEY` is configured.

It implements the Agents SDK `Model` interface and streams a deterministic markdown reply
(a heading, a list and a fenced code block) at a steady token rate, clearly labelled offline,
so the site works end to end on a machine with no API key and no network.
"""

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

from agents.items import ModelResponse, TResponseInputItem, TResponseStreamEvent
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    ResponseUsage,
)
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


class OfflineModel(Model):
    """A `Model` that streams `offline_reply` at `tps` tokens per second (0: no pacing)."""

    def __init__(self, *, tps: float = 40.0) -> None:
        self.tps = tps

    def _reply(self, input: str | list[TResponseInputItem]) -> str:
        return offline_reply(last_user_text(input), turn=count_user_turns(input), tps=self.tps)

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        text = self._reply(_input_arg(args, kwargs))
        response = _response(text, status="completed")
        return ModelResponse(
            output=list(response.output),
            usage=Usage(requests=1, output_tokens=len(tokenize(text))),
            response_id=response.id,
        )

    async def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[TResponseStreamEvent]:
        text = self._reply(_input_arg(args, kwargs))
        tokens = tokenize(text)
        final = _response(text, status="completed")
        message = final.output[0]
        assert isinstance(message, ResponseOutputMessage)
        empty_message = message.model_copy(update={"content": [], "status": "in_progress"})
        empty_part = ResponseOutputText(type="output_text", text="", annotations=[], logprobs=[])
        started = _response("", status="in_progress").model_copy(update={"id": final.id})
        seq = iter(range(len(tokens) + 16))
        common = {"item_id": message.id, "output_index": 0, "content_index": 0}

        yield ResponseCreatedEvent(
            type="response.created", response=started, sequence_number=next(seq)
        )
        yield ResponseOutputItemAddedEvent(
            type="response.output_item.added", item=empty_message, output_index=0,
            sequence_number=next(seq),
        )
        yield ResponseContentPartAddedEvent(
            type="response.content_part.added", part=empty_part, sequence_number=next(seq),
            **common,
        )
        delay = 1.0 / self.tps if self.tps > 0 else 0.0
        for token in tokens:
            await asyncio.sleep(delay)
            yield ResponseTextDeltaEvent(
                type="response.output_text.delta", delta=token, logprobs=[],
                sequence_number=next(seq), **common,
            )
        yield ResponseTextDoneEvent(
            type="response.output_text.done", text=text, logprobs=[], sequence_number=next(seq),
            **common,
        )
        yield ResponseContentPartDoneEvent(
            type="response.content_part.done", part=message.content[0],
            sequence_number=next(seq), **common,
        )
        yield ResponseOutputItemDoneEvent(
            type="response.output_item.done", item=message, output_index=0,
            sequence_number=next(seq),
        )
        yield ResponseCompletedEvent(
            type="response.completed", response=final, sequence_number=next(seq)
        )


def _input_arg(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | list[TResponseInputItem]:
    """The `input` argument of `get_response`/`stream_response`, however it was passed."""
    return kwargs["input"] if "input" in kwargs else args[1]


def _response(text: str, *, status: str) -> Response:
    output_tokens = len(tokenize(text))
    message = ResponseOutputMessage(
        id=f"msg_offline_{uuid.uuid4().hex}",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[], logprobs=[])],
    )
    return Response(
        id=f"resp_offline_{uuid.uuid4().hex}",
        created_at=0,
        model=OFFLINE_MODEL_NAME,
        object="response",
        output=[message] if text else [],
        tool_choice="none",
        tools=[],
        top_p=None,
        parallel_tool_calls=False,
        status=status,  # type: ignore[arg-type]
        usage=ResponseUsage(
            input_tokens=0,
            output_tokens=output_tokens,
            total_tokens=output_tokens,
            input_tokens_details=InputTokensDetails(cached_tokens=0, cache_write_tokens=0),
            output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
        ),
    )
