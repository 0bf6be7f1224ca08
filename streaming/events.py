"""The events of a run's log: what every transport formats for its wire shape.

Each event is a JSON-ready dict with the run id, a sequence number (1, 2, 3, ... per run)
and a `type`. A run's log holds one `started`, text `delta`s, periodic `metrics`, and
exactly one terminal event (`completed`, `stopped`, `failed` or `interrupted`).
"""

from typing import Literal, NotRequired, TypedDict

TerminalType = Literal["completed", "stopped", "failed", "interrupted"]
TERMINAL_TYPES: frozenset[str] = frozenset({"completed", "stopped", "failed", "interrupted"})


class Metrics(TypedDict):
    ttft_seconds: float | None
    token_count: int
    elapsed_seconds: float
    tokens_per_second: float | None


class Event(TypedDict):
    run_id: str
    seq: int
    type: str
    # started
    thread_id: NotRequired[str]
    model: NotRequired[str]
    # delta: `text` holds `tokens` model deltas; `token_count` is the running total;
    # `elapsed` is seconds since the run started; the first delta has `ttft_seconds`.
    text: NotRequired[str]
    tokens: NotRequired[int]
    token_count: NotRequired[int]
    elapsed: NotRequired[float]
    ttft_seconds: NotRequired[float]
    # metrics, and every terminal event
    metrics: NotRequired[Metrics]
    # failed, interrupted
    error: NotRequired[str]


def is_terminal(event: Event) -> bool:
    return event["type"] in TERMINAL_TYPES


def started(run_id: str, seq: int, *, thread_id: str, model: str) -> Event:
    return {"run_id": run_id, "seq": seq, "type": "started", "thread_id": thread_id, "model": model}


def delta(
    run_id: str, seq: int, *, text: str, tokens: int, token_count: int, elapsed: float = 0.0,
    ttft_seconds: float | None = None,
) -> Event:
    event: Event = {
        "run_id": run_id, "seq": seq, "type": "delta", "text": text, "tokens": tokens,
        "token_count": token_count, "elapsed": round(elapsed, 4),
    }
    if ttft_seconds is not None:
        event["ttft_seconds"] = round(ttft_seconds, 4)
    return event


def metrics(run_id: str, seq: int, *, values: Metrics) -> Event:
    return {"run_id": run_id, "seq": seq, "type": "metrics", "metrics": values}


def terminal(
    run_id: str, seq: int, *, type: TerminalType, values: Metrics, error: str = ""
) -> Event:
    event: Event = {"run_id": run_id, "seq": seq, "type": type, "metrics": values}
    if error:
        event["error"] = error
    return event


def text_of(events: list[Event]) -> str:
    """The reply text carried by `events`: the concatenation of their deltas."""
    return "".join(e["text"] for e in events if e["type"] == "delta")
