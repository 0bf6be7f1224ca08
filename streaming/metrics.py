"""This worker's metrics, in Prometheus's client: what an operator watches.

Each is counted once, where it happens: runs by the run manager and their producers, tokens
per coalesced delta (one `inc(n)`, never per character), deliveries by each transport,
refusals where a request is turned away. Every worker counts its own; each serves them on an
internal port of its own (`METRICS_PORT`, chatproject/serve.py), never through nginx, and
Prometheus scrapes every worker and adds them up.

Delivery lag is measured where it can be measured honestly: on the worker producing the run
(a delta's `elapsed` plus the run's start, both on this process's monotonic clock, is when
its producer made it and handed it to the log), for events made while the client's stream
was open (a replayed backlog is as old as the reply, which is not lag). Deltas delivered by
other workers are counted, not timed: workers share no clock.
"""

import time
from collections.abc import Iterable
from typing import Literal

from prometheus_client import Counter, Gauge, Histogram

from .events import TERMINAL_TYPES, Event, is_delta

Transport = Literal["sse", "websocket", "poll", "chatkit"]
Reason = Literal["rate_limited", "draining", "no_capacity", "unavailable", "bad_request"]
TRANSPORTS: tuple[Transport, ...] = ("sse", "websocket", "poll", "chatkit")
REASONS: tuple[Reason, ...] = ("rate_limited", "draining", "no_capacity", "unavailable", "bad_request")

# The runs this worker produces: run id -> its producer's start (time.monotonic()).
_producing: dict[str, float] = {}

LIVE_RUNS = Gauge("chat_live_runs", "Runs this worker is generating now.")
LIVE_RUNS.set_function(lambda: len(_producing))
RUNS_STARTED = Counter("chat_runs_started", "Runs this worker started generating.")
RUNS_ENDED = Counter(
    "chat_runs_ended",
    "Runs ended, by terminal status, counted by the worker that ended them (their producer's, "
    "or the one that reaped them).",
    ["status"],
)
TOKENS = Counter("chat_tokens_generated", "Tokens (model text deltas) this worker's runs generated.")
EVENTS_DELIVERED = Counter(
    "chat_events_delivered", "Run events this worker handed to clients, by transport.", ["transport"]
)
TTFT = Histogram(
    "chat_time_to_first_token_seconds",
    "From a run's start to the model's first token, for the runs this worker generated.",
    buckets=(0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0),
)
DELIVERY_LAG = Histogram(
    "chat_delivery_lag_seconds",
    "From when a run's producer made a delta to when a transport handed it to a client, for "
    "clients of the producing worker whose stream was open when it was made.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
REFUSED = Counter("chat_requests_refused", "Requests this worker refused, by reason.", ["reason"])
REAPED = Counter("chat_runs_reaped", "Runs this worker ended because their producer was gone.")
LOG_ERRORS = Counter(
    "chat_event_log_errors",
    "Appends and seals of this worker's runs that the event log did not take (unreachable or failing).",
)

# Children made once (a label lookup per event would cost more than the count), and shown at
# zero from the start.
_ended = {status: RUNS_ENDED.labels(status) for status in sorted(TERMINAL_TYPES)}
_delivered = {transport: EVENTS_DELIVERED.labels(transport) for transport in TRANSPORTS}
_refused = {reason: REFUSED.labels(reason) for reason in REASONS}


def run_producing(run_id: str, started: float) -> None:
    """This worker started generating the run (its producer began at `started`)."""
    _producing[run_id] = started
    RUNS_STARTED.inc()


def run_forgotten(run_id: str) -> None:
    """This worker no longer generates the run."""
    _producing.pop(run_id, None)


def run_ended(status: str) -> None:
    """This worker ended a run (as its producer, or reaping it) with `status`."""
    (_ended.get(status) or RUNS_ENDED.labels(status)).inc()


def refused(reason: Reason) -> None:
    """This worker turned a request away, for `reason`."""
    _refused[reason].inc()


class Delivery:
    """One client's stream on one transport: counts the events handed to it, and times the
    deltas made while it was open (see the module's docstring)."""

    __slots__ = ("counted", "since")

    def __init__(self, transport: Transport) -> None:
        self.counted = _delivered[transport]
        self.since = time.monotonic()

    def sent(self, event: Event) -> None:
        """`event` was handed to the client."""
        self.counted.inc()
        if is_delta(event) and (started := _producing.get(event["run_id"])) is not None:
            made = started + event["elapsed"]
            if made >= self.since:
                DELIVERY_LAG.observe(max(0.0, time.monotonic() - made))

    def sent_all(self, events: Iterable[Event]) -> None:
        for event in events:
            self.sent(event)
