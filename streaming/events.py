"""The events of a run's log: what every wire shape formats.

Each event is a JSON-ready dict with the run id, a sequence number (1, 2, 3, ... per run)
and a `type`. A run's log holds one `started`, text `delta`s, the agent's `reasoning` and tool events
(`tool_call`, `tool_arguments`, `tool_result`), periodic `metrics`, and exactly one
terminal event (`completed`, `stopped`, `failed` or `interrupted`), last.

`Metrics` is the one metrics vocabulary of the project: the same keys in events, in the
database (`Message`), in the REST API and in the page.
"""

from typing import Any, Literal, NotRequired, TypedDict, TypeGuard

import orjson

TerminalType = Literal["completed", "stopped", "failed", "interrupted"]
FailureType = Literal["failed", "interrupted"]
TERMINAL_TYPES: frozenset[str] = frozenset({"completed", "stopped", "failed", "interrupted"})
FAILURE_TYPES: frozenset[str] = frozenset({"failed", "interrupted"})


class Metrics(TypedDict):
    ttft_seconds: float | None  # from the run's start to the model's first token
    token_count: int  # model deltas so far
    duration_seconds: float  # from the run's start to now (or to its end)
    tokens_per_second: float | None


class Started(TypedDict):
    """The run exists: logged before the model is called."""

    run_id: str
    seq: int
    type: Literal["started"]
    thread_id: str
    model: str


class Delta(TypedDict):
    """Reply text: `text` holds `tokens` model deltas (coalesced)."""

    run_id: str
    seq: int
    type: Literal["delta"]
    text: str
    tokens: int
    token_count: int  # the running total of model deltas
    elapsed: float  # seconds since the run started
    ttft_seconds: NotRequired[float]  # on the first delta only


class MetricsEvent(TypedDict):
    """The run's metrics so far (about once a second while it streams)."""

    run_id: str
    seq: int
    type: Literal["metrics"]
    metrics: Metrics


class Terminal(TypedDict):
    """The run's end, with its final metrics; failures say why in `error`."""

    run_id: str
    seq: int
    type: TerminalType
    metrics: Metrics
    error: NotRequired[str]


class Reasoning(TypedDict):
    """A piece of the model's reasoning summary."""

    run_id: str
    seq: int
    type: Literal["reasoning"]
    text: str


class ToolCall(TypedDict):
    """The agent calls a tool; its arguments follow (`ToolArguments`), then its result."""

    run_id: str
    seq: int
    type: Literal["tool_call"]
    call_id: str
    name: str


class ToolArguments(TypedDict):
    """A piece of a tool call's JSON arguments."""

    run_id: str
    seq: int
    type: Literal["tool_arguments"]
    call_id: str
    text: str


class ToolResult(TypedDict):
    """A tool call's output (cut to `AGENT_TOOL_OUTPUT_CHARS`); `error` if the tool failed."""

    run_id: str
    seq: int
    type: Literal["tool_result"]
    call_id: str
    output: str
    error: bool
    truncated: bool


Event = Started | Delta | Reasoning | ToolCall | ToolArguments | ToolResult | MetricsEvent | Terminal
STEP_TYPES: frozenset[str] = frozenset({"reasoning", "tool_call", "tool_arguments", "tool_result"})


class Logged(dict[str, Any]):
    """An event as a log holds it: the event, plus the JSON it was logged as (`raw`), so
    that a wire sending the event unchanged sends those bytes instead of encoding it again.
    Events are never modified once made."""

    __slots__ = ("raw",)
    raw: bytes


def encode_event(payload: Any) -> bytes:
    """An event (or any JSON payload) as compact UTF-8 JSON: the one encoder of the
    project's events, for the log and for every wire. A logged event goes out as its own
    bytes: encoded once, by its producer, for every subscriber on every worker."""
    raw = getattr(payload, "raw", None)
    if raw is not None:
        return raw  # type: ignore[no-any-return]
    return orjson.dumps(payload)


def decode_event(raw: bytes) -> Event:
    """An event from its logged JSON, keeping the bytes."""
    event = Logged(orjson.loads(raw))
    event.raw = raw
    return event  # type: ignore[return-value]


def is_terminal(event: Event) -> TypeGuard[Terminal]:
    return event["type"] in TERMINAL_TYPES


def is_failure(event: Event) -> TypeGuard[Terminal]:
    """A terminal event that ends the reply short: `failed` or `interrupted`."""
    return event["type"] in FAILURE_TYPES


def is_delta(event: Event) -> TypeGuard[Delta]:
    return event["type"] == "delta"


def started(run_id: str, seq: int, *, thread_id: str, model: str) -> Started:
    return {"run_id": run_id, "seq": seq, "type": "started", "thread_id": thread_id, "model": model}


def delta(
    run_id: str, seq: int, *, text: str, tokens: int, token_count: int, elapsed: float = 0.0,
    ttft_seconds: float | None = None,
) -> Delta:
    event: Delta = {
        "run_id": run_id, "seq": seq, "type": "delta", "text": text, "tokens": tokens,
        "token_count": token_count, "elapsed": round(elapsed, 4),
    }
    if ttft_seconds is not None:
        event["ttft_seconds"] = round(ttft_seconds, 4)
    return event


def reasoning(run_id: str, seq: int, *, text: str) -> Reasoning:
    return {"run_id": run_id, "seq": seq, "type": "reasoning", "text": text}


def tool_call(run_id: str, seq: int, *, call_id: str, name: str) -> ToolCall:
    return {"run_id": run_id, "seq": seq, "type": "tool_call", "call_id": call_id, "name": name}


def tool_arguments(run_id: str, seq: int, *, call_id: str, text: str) -> ToolArguments:
    return {"run_id": run_id, "seq": seq, "type": "tool_arguments", "call_id": call_id, "text": text}


def tool_result(
    run_id: str, seq: int, *, call_id: str, output: str, error: bool = False, truncated: bool = False
) -> ToolResult:
    return {
        "run_id": run_id, "seq": seq, "type": "tool_result", "call_id": call_id, "output": output,
        "error": error, "truncated": truncated,
    }


def metrics(run_id: str, seq: int, *, values: Metrics) -> MetricsEvent:
    return {"run_id": run_id, "seq": seq, "type": "metrics", "metrics": values}


def terminal(
    run_id: str, seq: int, *, type: TerminalType, values: Metrics, error: str = ""
) -> Terminal:
    event: Terminal = {"run_id": run_id, "seq": seq, "type": type, "metrics": values}
    if error:
        event["error"] = error
    return event


def failure_text(event: Event) -> str | None:
    """What went wrong, for a `failed` or `interrupted` event; None for any other."""
    if is_failure(event):
        return event.get("error") or "The reply failed."
    return None


def text_of(events: list[Event]) -> str:
    """The reply text carried by `events`: the concatenation of their deltas."""
    return "".join(e["text"] for e in events if is_delta(e))


class Steps:
    """A reply's steps as stored (`Message.steps`), built from its events in order:
    reasoning pieces join into one step until something else happens; a tool call gathers
    its arguments and its result."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self.calls: dict[str, dict[str, Any]] = {}

    def add(self, event: Event) -> None:
        kind = event["type"]
        if kind == "reasoning":
            last = self.steps[-1] if self.steps else None
            if last is not None and last["type"] == "reasoning":
                last["text"] += event["text"]  # type: ignore[typeddict-item]
            else:
                self.steps.append({"type": "reasoning", "text": event["text"]})  # type: ignore[typeddict-item]
        elif kind == "tool_call":
            call_id: str = event["call_id"]  # type: ignore[typeddict-item]
            step = {
                "type": "tool", "call_id": call_id, "name": event["name"],  # type: ignore[typeddict-item]
                "arguments": "", "output": None, "error": False, "truncated": False,
            }
            self.calls[call_id] = step
            self.steps.append(step)
        elif kind == "tool_arguments" and (call := self.calls.get(event["call_id"])):  # type: ignore[typeddict-item]
            call["arguments"] += event["text"]  # type: ignore[typeddict-item]
        elif kind == "tool_result" and (call := self.calls.get(event["call_id"])):  # type: ignore[typeddict-item]
            call.update(output=event["output"], error=event["error"], truncated=event["truncated"])  # type: ignore[typeddict-item]


def steps_of(events: list[Event]) -> list[dict[str, Any]]:
    """The steps `events` record (`Steps`)."""
    steps = Steps()
    for event in events:
        steps.add(event)
    return steps.steps


def _reported(event: Event) -> Metrics | None:
    if event["type"] == "metrics" or is_terminal(event):
        return event["metrics"]
    return None


def metrics_of(events: list[Event]) -> Metrics:
    """The metrics a log of `events` holds: the newest reported, with the token count of
    its deltas (for a run that ended without saying so, e.g. its worker died)."""
    last = next((m for e in reversed(events) if (m := _reported(e)) is not None), None)
    tokens = sum(e["tokens"] for e in events if is_delta(e))
    return {
        "ttft_seconds": last["ttft_seconds"] if last else None,
        "token_count": tokens,
        "duration_seconds": last["duration_seconds"] if last else 0.0,
        "tokens_per_second": last["tokens_per_second"] if last else None,
    }
