"""The events of a run's log: what every wire shape formats.

Each event is a JSON-ready dict with the run id, a sequence number (1, 2, 3, ... per run)
and a `type`. A run's log holds one `started`, text `delta`s, periodic `metrics`, and
exactly one terminal event (`completed`, `stopped`, `failed` or `interrupted`), last.

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


Event = Started | Delta | MetricsEvent | Terminal


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
