"""The agent runtime: builds the agent from settings and streams what it does: its reply's
text, its reasoning summary, and its tool calls with their results (`Step`s).

Model choice follows the settings: the OpenAI Responses API (default when a key is set),
Chat Completions for OpenAI-compatible servers (`AGENT_API=chat_completions`), or the
built-in offline model when no `OPENAI_API_KEY` is configured. Tools are `AGENT_TOOLS`
(dotted paths to `@function_tool`s; the offline model's demo has the built-in ones) and the
tools of the MCP servers at `AGENT_MCP_SERVERS` (streamable HTTP), each call with a timeout,
a per-reply cap, and its output truncated; a tool that fails gives the model an error result.
"""

import asyncio
import dataclasses
import json
import logging
import weakref
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import openai
from agents import (
    Agent,
    FunctionTool,
    MaxTurnsExceeded,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    RunContextWrapper,
    Runner,
    set_tracing_disabled,
)
from agents.items import TResponseInputItem
from agents.mcp import MCPServerStreamableHttp, MCPUtil
from agents.models.interface import Model
from agents.result import RunResultStreaming
from agents.tool import default_tool_error_function
from agents.tool_context import ToolContext
from django.conf import settings
from django.utils.module_loading import import_string
from openai.types.responses import (
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseOutputItemAddedEvent,
    ResponseReasoningSummaryTextDeltaEvent,
    ResponseTextDeltaEvent,
)

from .model_client import ModelClient
from .offline_model import OFFLINE_MODEL_NAME, OfflineModel
from .selectors import HistoryTurn
from .tools import BUILT_IN

logger = logging.getLogger(__name__)

# Traces would be uploaded to OpenAI; the product does not send them anywhere.
set_tracing_disabled(True)

AGENT_NAME = "Assistant"
# One client per event loop: an httpx pool must not be shared across loops.
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str | None], ModelClient]]" = weakref.WeakKeyDictionary()


class ModelError(Exception):
    """The model could not produce (the rest of) a reply; the message is safe to show users."""


def openai_client() -> ModelClient:
    """The process's `AsyncOpenAI` client for the running event loop. Its HTTP goes through
    aiohttp (`openai.DefaultAioHttpClient`, the OpenAI library's own aiohttp transport, with
    its defaults) rather than httpx2's stock transport, whose reads each enter AnyIO's
    cancel scopes and parse HTTP in Python: the Agents SDK streams a token for about a
    quarter less CPU that way (docs/benchmarks.md)."""
    loop = asyncio.get_running_loop()
    per_loop = _clients.setdefault(loop, {})
    key = (settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL)
    if key not in per_loop:
        per_loop[key] = ModelClient(
            api_key=settings.OPENAI_API_KEY, base_url=settings.OPENAI_BASE_URL, max_retries=0,
            http_client=openai.DefaultAioHttpClient(),
        )
    return per_loop[key]


async def close_clients() -> None:
    """Close the running event loop's clients (their aiohttp sessions and connections):
    a worker that stops, or a test's loop, leaves none open."""
    for client in _clients.pop(asyncio.get_running_loop(), {}).values():
        await client.close()


def _connection_error(exc: BaseException) -> aiohttp.ClientConnectionError | None:
    """The aiohttp connection error (refused, reset, closed before the reply was complete;
    not a timeout) behind a model request's failure, if any. The aiohttp transport reports
    every aiohttp connection error as httpx2's `ConnectTimeout` (which the OpenAI client
    raises as `APITimeoutError`); the error it came from says what happened."""
    cause: BaseException | None = exc
    for _ in range(8):  # the chain is short: openai's error, httpx2's, aiohttp's
        if cause is None or isinstance(cause, aiohttp.ClientError):
            break
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(cause, aiohttp.ServerTimeoutError):
        return cause
    return None


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


def _finished_calls(turn: HistoryTurn) -> list[dict[str, Any]]:
    """The tool calls of a reply that have a result (those given back to the model)."""
    return [s for s in turn.steps if s.get("type") == "tool" and s.get("output") is not None]


def history_input(turns: Iterable[HistoryTurn]) -> list[TResponseInputItem]:
    """Turns (oldest first, the new user message last) trimmed to the history budget, as
    the Agents SDK's input list: a reply's finished tool calls go back to the model as
    `function_call` and `function_call_output` items before its text.

    The newest turns are kept: at most `AGENT_HISTORY_MESSAGES` of them and, beyond the
    newest one, no more than `AGENT_HISTORY_CHARS` characters in all (tool calls' arguments
    and outputs included). The result never starts with an assistant turn.
    """
    turns = [t for t in turns if t.content or t.steps]
    kept: list[HistoryTurn] = []
    budget = settings.AGENT_HISTORY_CHARS
    for turn in reversed(turns[-settings.AGENT_HISTORY_MESSAGES :]):
        size = len(turn.content) + sum(len(s["arguments"]) + len(s["output"]) for s in _finished_calls(turn))
        if kept and size > budget:
            break
        budget -= size
        kept.append(turn)
    kept.reverse()
    while len(kept) > 1 and kept[0].role != "user":
        kept.pop(0)
    items: list[TResponseInputItem] = []
    for turn in kept:
        for step in _finished_calls(turn):
            items.append({  # type: ignore[arg-type]
                "type": "function_call", "call_id": step["call_id"], "name": step["name"],
                "arguments": step.get("arguments") or "{}",
            })
            items.append({"type": "function_call_output", "call_id": step["call_id"], "output": step["output"]})  # type: ignore[arg-type]
        if turn.content:
            items.append({"role": turn.role, "content": turn.content})  # type: ignore[arg-type]
    return items


TOOL_LIMIT_ERROR = "Tool call limit reached ({limit} per reply): answer with what you have."


@dataclass
class RunTools:
    """A run's tool bookkeeping (the run context its tools see): how many calls were made,
    and which ended in an error or were truncated (by call id)."""

    calls: int = 0
    errors: set[str] = field(default_factory=set)
    truncated: set[str] = field(default_factory=set)


def configured_tools() -> list[FunctionTool]:
    """The `AGENT_TOOLS` function tools (and the built-in ones for the offline model)."""
    paths = list(settings.AGENT_TOOLS)
    if not settings.OPENAI_API_KEY:
        paths += [p for p in BUILT_IN if p not in paths]
    tools = []
    for path in paths:
        tool = import_string(path)
        if not isinstance(tool, FunctionTool):
            raise TypeError(f"AGENT_TOOLS: {path} is not a @function_tool")
        tools.append(tool)
    return tools


def guarded(tool: FunctionTool) -> FunctionTool:
    """`tool` with the run's limits: at most `AGENT_MAX_TOOL_CALLS` calls per reply, each
    given `AGENT_TOOL_TIMEOUT_SECONDS` (async tools) and its output cut to
    `AGENT_TOOL_OUTPUT_CHARS`; an exception becomes an error result the model sees."""
    invoke = tool.on_invoke_tool

    async def on_invoke_tool(context: ToolContext[Any], arguments: str) -> str:
        tools: RunTools = context.context
        call_id = context.tool_call_id
        tools.calls += 1
        if tools.calls > settings.AGENT_MAX_TOOL_CALLS:
            tools.errors.add(call_id)
            return TOOL_LIMIT_ERROR.format(limit=settings.AGENT_MAX_TOOL_CALLS)
        try:
            output = await invoke(context, arguments)
        except Exception as exc:
            logger.info("tool %s failed: %s", tool.name, exc)
            tools.errors.add(call_id)
            return f"Error: {exc}" if isinstance(exc, ValueError) else default_tool_error_function(context, exc)
        text = output if isinstance(output, str) else _as_text(output)
        if text == default_tool_error_function(context, Exception()):
            tools.errors.add(call_id)  # the tool's own failure policy answered
        limit = settings.AGENT_TOOL_OUTPUT_CHARS
        if len(text) > limit:
            tools.truncated.add(call_id)
            text = text[:limit]
        return text

    def timed_out(context: ToolContext[Any], error: Exception) -> str:
        context.context.errors.add(context.tool_call_id)
        return str(error)

    timeout = tool.timeout_seconds
    if timeout is None and not getattr(invoke, "__function_tool_sync__", False):
        timeout = settings.AGENT_TOOL_TIMEOUT_SECONDS
    return dataclasses.replace(
        tool, on_invoke_tool=on_invoke_tool, timeout_seconds=timeout, timeout_behavior="error_as_result",
        timeout_error_function=timed_out,
    )


def _as_text(output: Any) -> str:
    """A tool's output as text: text content as is (an MCP tool's `{"type": "text", "text"}`
    items, the SDK's `ToolOutputText`), anything else as JSON or `str`."""
    if isinstance(output, list) and output and all(_text_of(part) is not None for part in output):
        return "\n".join(_text_of(part) or "" for part in output)
    text = _text_of(output)
    if text is not None:
        return text
    if isinstance(output, (dict, list)):
        return json.dumps(output, ensure_ascii=False)
    return str(output)


def _text_of(part: Any) -> str | None:
    if isinstance(part, dict):
        return part["text"] if part.get("type") == "text" and isinstance(part.get("text"), str) else None
    if getattr(part, "type", None) == "text" and isinstance(getattr(part, "text", None), str):
        return part.text  # type: ignore[no-any-return]
    return None


@dataclass(frozen=True)
class Step:
    """What the agent did, as it streams: `kind` is "text" or "reasoning" (with `text`),
    "tool_call" (`call_id`, `name`), "tool_arguments" (`call_id`, `text`: a piece of the
    JSON arguments) or "tool_result" (`call_id`, `text`: the output, `error`, `truncated`)."""

    kind: str
    text: str = ""
    call_id: str = ""
    name: str = ""
    error: bool = False
    truncated: bool = False


class AgentRun:
    """One run of the agent on `input`, with its MCP servers connected for its length:

        async with AgentRun(input) as run:
            async for step in run.steps(): ...

    `cancel()` stops the model (closing its HTTP stream) and any tool call in progress."""

    def __init__(self, input: list[TResponseInputItem]) -> None:
        self.input = input
        self.tools = RunTools()
        self.result: RunResultStreaming | None = None
        self.cancelled = False
        self._exit = AsyncExitStack()

    async def __aenter__(self) -> "AgentRun":
        tools = [guarded(t) for t in configured_tools()]
        agent = Agent(name=AGENT_NAME, instructions=settings.AGENT_INSTRUCTIONS, model=build_model())
        for url in settings.AGENT_MCP_SERVERS:
            tools += await self._mcp_tools(url, agent)
        agent.tools = list(tools)
        self.result = Runner.run_streamed(
            agent, self.input, context=self.tools, max_turns=settings.AGENT_MAX_TOOL_CALLS + 2,
            run_config=RunConfig(tracing_disabled=True),
        )
        if self.cancelled:
            self.result.cancel(mode="immediate")
        return self

    async def _mcp_tools(self, url: str, agent: Agent) -> list[FunctionTool]:
        """The tools of the MCP server at `url`, guarded like the others (none, with a
        warning, if it cannot be reached: the reply goes on without them)."""
        server = MCPServerStreamableHttp(
            params={"url": url, "timeout": settings.AGENT_TOOL_TIMEOUT_SECONDS},
            name=url, client_session_timeout_seconds=settings.AGENT_TOOL_TIMEOUT_SECONDS,
        )
        try:
            await server.connect()
            self._exit.push_async_callback(server.cleanup)
            found = await MCPUtil.get_function_tools(server, False, RunContextWrapper(self.tools), agent)
        except Exception as exc:
            logger.warning("MCP server %s is unavailable; replying without its tools (%s)", url, exc)
            return []
        return [guarded(t) for t in found if isinstance(t, FunctionTool)]

    async def __aexit__(self, *exc: object) -> None:
        await self._exit.aclose()

    def cancel(self) -> None:
        self.cancelled = True
        if self.result is not None:
            self.result.cancel(mode="immediate")

    def steps(self) -> AsyncIterator[Step]:
        """What the agent does, in order; a provider failure becomes a `ModelError`."""
        assert self.result is not None
        return agent_steps(self.result, self.tools)


async def agent_steps(result: RunResultStreaming, tools: RunTools) -> AsyncIterator[Step]:
    """The steps of a streamed run, in order; a provider failure becomes a `ModelError`."""
    calls: dict[int, str] = {}  # output index -> call id, within the current response
    sent: dict[str, str] = {}  # call id -> the arguments streamed so far
    reasoning_part: tuple[str, int] | None = None
    try:
        async for event in result.stream_events():
            if event.type == "raw_response_event":
                data = event.data
                if isinstance(data, ResponseTextDeltaEvent):
                    if data.delta:
                        yield Step("text", data.delta)
                elif isinstance(data, ResponseReasoningSummaryTextDeltaEvent):
                    part = (data.item_id, data.summary_index)
                    gap = "\n\n" if reasoning_part is not None and part != reasoning_part else ""
                    reasoning_part = part
                    if data.delta:
                        yield Step("reasoning", gap + data.delta)
                elif isinstance(data, ResponseOutputItemAddedEvent) and data.item.type == "function_call":
                    call_id = data.item.call_id
                    calls[data.output_index] = call_id
                    if call_id not in sent:
                        sent[call_id] = ""
                        yield Step("tool_call", call_id=call_id, name=data.item.name)
                elif isinstance(data, ResponseFunctionCallArgumentsDeltaEvent):
                    call_id = calls.get(data.output_index, "")
                    if call_id and data.delta:
                        sent[call_id] += data.delta
                        yield Step("tool_arguments", data.delta, call_id=call_id)
            elif event.type == "run_item_stream_event" and event.name == "tool_called":
                raw = event.item.raw_item
                if getattr(raw, "type", None) != "function_call":
                    continue
                call_id, arguments = raw.call_id, raw.arguments or ""  # type: ignore[union-attr]
                if call_id not in sent:
                    sent[call_id] = ""
                    yield Step("tool_call", call_id=call_id, name=raw.name)  # type: ignore[union-attr]
                if arguments.startswith(sent[call_id]) and len(arguments) > len(sent[call_id]):
                    rest = arguments[len(sent[call_id]):]
                    sent[call_id] = arguments
                    yield Step("tool_arguments", rest, call_id=call_id)
            elif event.type == "run_item_stream_event" and event.name == "tool_output":
                raw = event.item.raw_item
                call_id = raw.get("call_id", "") if isinstance(raw, dict) else getattr(raw, "call_id", "")
                if call_id in sent:
                    yield Step(
                        "tool_result", _as_text(event.item.output), call_id=call_id,
                        error=call_id in tools.errors, truncated=call_id in tools.truncated,
                    )
    except asyncio.CancelledError:
        raise
    except MaxTurnsExceeded as exc:
        raise ModelError("The agent kept calling tools without answering; it was stopped.") from exc
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
    connection_error = _connection_error(exc)
    if isinstance(exc, openai.APITimeoutError) and connection_error is None:
        return "The model provider did not answer in time."
    if isinstance(connection_error, aiohttp.ClientConnectorError):
        return "The model provider could not be reached."
    if isinstance(exc, openai.APIConnectionError):
        return "The connection to the model provider was lost before the reply was complete."
    if isinstance(exc, ModelError):
        return str(exc)
    return "The model failed to produce a reply."
