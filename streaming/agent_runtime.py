"""The agent runtime: builds the agent from settings and streams its reply as text deltas.

Model choice follows the settings: the OpenAI Responses API (default when a key is set),
Chat Completions for OpenAI-compatible servers (`AGENT_API=chat_completions`), or the
built-in offline model when no `OPENAI_API_KEY` is configured.
"""

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Iterable

import openai
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    set_tracing_disabled,
)
from agents.items import TResponseInputItem
from agents.models.interface import Model
from agents.result import RunResultStreaming
from django.conf import settings
from openai.types.responses import ResponseTextDeltaEvent

from .offline_model import OFFLINE_MODEL_NAME, OfflineModel
from .selectors import HistoryTurn

logger = logging.getLogger(__name__)

# Traces would be uploaded to OpenAI; the product does not send them anywhere.
set_tracing_disabled(True)

AGENT_NAME = "Assistant"
# One client per event loop: an httpx pool must not be shared across loops.
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str | None], openai.AsyncOpenAI]]" = weakref.WeakKeyDictionary()


class ModelError(Exception):
    """The model could not produce (the rest of) a reply; the message is safe to show users."""


def openai_client() -> openai.AsyncOpenAI:
    """The process's `AsyncOpenAI` client for the running event loop."""
    loop = asyncio.get_running_loop()
    per_loop = _clients.setdefault(loop, {})
    key = (settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL)
    if key not in per_loop:
        per_loop[key] = openai.AsyncOpenAI(
            api_key=settings.OPENAI_API_KEY, base_url=settings.OPENAI_BASE_URL, max_retries=0
        )
    return per_loop[key]


def model_name() -> str:
    """The name recorded on replies: the configured model, or `offline`."""
    return settings.AGENT_MODEL if settings.OPENAI_API_KEY else OFFLINE_MODEL_NAME


def build_model() -> Model:
    if not settings.OPENAI_API_KEY:
        return OfflineModel(tps=settings.OFFLINE_MODEL_TPS)
    if settings.AGENT_API == "chat_completions":
        return OpenAIChatCompletionsModel(model=settings.AGENT_MODEL, openai_client=openai_client())
    if settings.AGENT_API != "responses":
        raise ValueError(f"AGENT_API must be 'responses' or 'chat_completions', not {settings.AGENT_API!r}")
    return OpenAIResponsesModel(model=settings.AGENT_MODEL, openai_client=openai_client())


def build_agent() -> Agent:
    return Agent(name=AGENT_NAME, instructions=settings.AGENT_INSTRUCTIONS, model=build_model())


def history_input(turns: Iterable[HistoryTurn]) -> list[TResponseInputItem]:
    """Turns (oldest first, the new user message last) trimmed to the history budget.

    The newest turns are kept: at most `AGENT_HISTORY_MESSAGES` of them and, beyond the
    newest one, no more than `AGENT_HISTORY_CHARS` characters in all. The result never
    starts with an assistant turn.
    """
    turns = [t for t in turns if t.content]
    kept: list[HistoryTurn] = []
    budget = settings.AGENT_HISTORY_CHARS
    for turn in reversed(turns[-settings.AGENT_HISTORY_MESSAGES :]):
        if kept and len(turn.content) > budget:
            break
        budget -= len(turn.content)
        kept.append(turn)
    kept.reverse()
    while len(kept) > 1 and kept[0].role != "user":
        kept.pop(0)
    return [{"role": t.role, "content": t.content} for t in kept]  # type: ignore[misc]


def run_start(input: list[TResponseInputItem]) -> RunResultStreaming:
    """Start the agent on `input`; the caller iterates `text_deltas` and may `cancel()` it."""
    return Runner.run_streamed(
        build_agent(), input, max_turns=1, run_config=RunConfig(tracing_disabled=True)
    )


async def text_deltas(result: RunResultStreaming) -> AsyncIterator[str]:
    """The reply's text deltas; a provider failure becomes a `ModelError` with a clear message."""
    try:
        async for event in result.stream_events():
            if (
                event.type == "raw_response_event"
                and isinstance(event.data, ResponseTextDeltaEvent)
                and event.data.delta
            ):
                yield event.data.delta
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        message = describe_model_error(exc)
        logger.warning("model stream failed: %s", message, exc_info=exc)
        raise ModelError(message) from exc


def describe_model_error(exc: BaseException) -> str:
    """A short, user-safe explanation of a model failure."""
    if isinstance(exc, openai.RateLimitError):
        return "The model provider is rate-limiting requests (HTTP 429). Please try again shortly."
    if isinstance(exc, openai.AuthenticationError):
        return "The model provider rejected the API key (HTTP 401). Check OPENAI_API_KEY."
    if isinstance(exc, openai.APIStatusError):
        return f"The model provider returned an error (HTTP {exc.status_code})."
    if isinstance(exc, openai.APITimeoutError):
        return "The model provider did not answer in time."
    if isinstance(exc, openai.APIConnectionError):
        return "The connection to the model provider was lost before the reply was complete."
    if isinstance(exc, ModelError):
        return str(exc)
    return "The model failed to produce a reply."
