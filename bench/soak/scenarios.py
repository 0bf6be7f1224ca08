"""What the soak's clients do with a run, one scenario each. Every scenario starts one run
on a random worker, through the native API (then SSE or polling) or a WebSocket `start`,
and then, by kind:

- `follow`: reads it to the end (sometimes with a second tab on the other worker);
- `resume`: disconnects at one to three random seqs, each time resuming on the other
  worker after a short pause (`Last-Event-ID`, or `subscribe` with `after`);
- `reload`: leaves partway, reads the thread as a reloaded page does, and follows the
  run again from seq 0 on a random worker;
- `slow`: reads with pauses (a WebSocket reader pauses and resumes delivery);
- `stop`: reads it while a stop is sent to the other worker (HTTP, or a WebSocket
  `stop` on a connection of its own);
- `drop`: leaves at a random seq for good, half of them having asked for
  `cancel_on_disconnect`.

Any read that breaks (a worker killed, Redis restarting, a drain) resumes on the other
worker from the last seq seen, as the page does, a bounded number of times.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp

from bench.soak.clients import Browser, Outcome, View, failure

if TYPE_CHECKING:
    from bench.soak.load import Soak

KINDS = {"follow": 25, "resume": 20, "reload": 10, "slow": 10, "stop": 15, "drop": 15}
MAX_TROUBLES = 8  # failed reads a client resumes after, per view
NEXT_TRANSPORT = {"sse": (("sse", 0.8), ("ws", 0.2)), "ws": (("ws", 0.7), ("sse", 0.3)),
                  "poll": (("poll", 1.0),)}  # fmt: skip


@dataclass
class Scenario:
    number: int
    kind: str
    via: str  # how the run was started: "native" (POST .../messages) or "ws"
    started_at: float
    cancel_on_disconnect: bool = False
    run_id: str | None = None
    worker: int | None = None  # the worker that answered the start (native, first attempt)
    refused: str | None = None  # a per-user limit said no (HTTP 429 / rate_limited)
    failure: str | None = None  # the run could not be started
    stop: dict = field(default_factory=dict)  # via, worker, sent_at, acked
    views: list[View] = field(default_factory=list)


def view_for(sc: Scenario, tab: str = "") -> View:
    view = View(client=f"{sc.kind}#{sc.number}{tab}", run_id=sc.run_id)
    sc.views.append(view)
    return view


def cut_points(soak: Soak, count: int) -> list[int]:
    """Random seqs to disconnect at, somewhere inside an average reply."""
    events = soak.expected_events
    return sorted(soak.rng.sample(range(2, max(4, int(events * 0.9))), count))


async def read(
    b: Browser, base: str, view: View, transport: str, stop_at: int | None, slow: bool,
    start: dict | None,
) -> Outcome:  # fmt: skip
    if transport == "ws":
        return await b.read_ws(base, view, stop_at=stop_at, slow=slow, start=start)
    if transport == "poll":
        return await b.read_poll(base, view, stop_at=stop_at, slow=slow)
    return await b.read_sse(base, view, stop_at=stop_at, slow=slow)


async def follow(
    soak: Soak, b: Browser, view: View, worker: int, transport: str, *,
    cuts: list[int] | None = None, leave_at: int | None = None, slow: bool = False,
    start: dict | None = None,
) -> Outcome:  # fmt: skip
    """Read `view`'s run to its terminal event (or to seq `leave_at`, where the client
    leaves for good), from `worker` over `transport`. At each seq of `cuts` it disconnects
    and resumes on the other worker after a short pause; after a failed read, too (at most
    MAX_TROUBLES times). A WebSocket `start` is sent again (same `client_id`) until the
    run's first event has arrived."""
    rng, cuts = soak.rng, list(cuts or [])
    while True:
        targets = [c for c in [*cuts, leave_at] if c is not None and c > view.last]
        stop_at = min(targets) if targets else None
        view.hops.append(f"w{worker + 1}:{transport}@{view.last}")
        outcome = await read(b, soak.cluster.bases[worker], view, transport, stop_at, slow, start)
        if outcome.kind == "cut":
            if leave_at is not None and view.last >= leave_at:
                view.partial = True
                return outcome
            await asyncio.sleep(rng.uniform(0, 1.0))
        elif outcome.kind == "error":
            view.troubles.append(f"{time.time() - soak.t0:.1f}s w{worker + 1}: {outcome.detail}")
            if len(view.troubles) > MAX_TROUBLES:
                view.failure = f"gave up after {len(view.troubles)} failed reads: {outcome.detail}"
                return outcome
            await asyncio.sleep(min(2.0, 0.25 * len(view.troubles)))
        else:  # end, gone, refused
            view.gone = outcome.kind == "gone"
            return outcome
        worker = 1 - worker
        if view.run_id is not None:  # else the start is sent again
            choices, weights = zip(*NEXT_TRANSPORT[transport], strict=True)
            transport = rng.choices(choices, weights)[0]


async def start_native(soak: Soak, sc: Scenario, b: Browser, worker: int) -> int | None:
    """`POST /api/threads/<id>/messages` with a `client_id`, retried on the other worker
    after a failure (a retry of a start that got through answers that run). The worker
    that answered, or None (refused, or it failed)."""
    route = "POST /api/threads/<id>/messages"
    body = {"message": f"soak {sc.number}", "client_id": uuid.uuid4().hex,
            "cancel_on_disconnect": sc.cancel_on_disconnect}  # fmt: skip
    for attempt in range(1, MAX_TROUBLES + 1):
        try:
            status, data = await b.call(
                "POST", soak.cluster.bases[worker], f"/api/threads/{b.thread}/messages", route, body
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            soak.traffic.incident(route, failure(exc))
            status, data = 0, None
        if status in (200, 201) and data:
            sc.run_id = data["run_id"]
            sc.worker = worker if status == 201 else None
            return worker
        if status == 429:
            sc.refused = str(data)
            return None
        if status and status < 500 and status != 503:
            sc.failure = f"start: HTTP {status} {data}"
            return None
        await asyncio.sleep(min(2.0, 0.25 * attempt))
        worker = 1 - worker
    sc.failure = "start: no worker took it"
    return None


async def run(
    soak: Soak, sc: Scenario, b: Browser, view: View, *, cuts: list[int] | None = None,
    leave_at: int | None = None, slow: bool = False,
) -> None:  # fmt: skip
    """Start the scenario's run on a random worker and follow it (`follow`): a WebSocket
    `start` reads on its own connection; a native start is read over SSE or polling from
    either worker."""
    rng, worker = soak.rng, soak.rng.randrange(2)
    if sc.via == "ws":
        start = {"command": "start", "message": f"soak {sc.number}", "client_id": uuid.uuid4().hex,
                 "cancel_on_disconnect": sc.cancel_on_disconnect}  # fmt: skip
        outcome = await follow(soak, b, view, worker, "ws", cuts=cuts, leave_at=leave_at,
                               slow=slow, start=start)  # fmt: skip
        sc.run_id = view.run_id
        if outcome.kind == "refused":
            sc.refused = outcome.detail
        elif view.run_id is None:
            sc.failure = f"start: {outcome.detail}"
        return
    worker = await start_native(soak, sc, b, worker)
    if worker is None:
        return
    view.run_id = sc.run_id
    transport = "poll" if rng.random() < soak.args.poll_share else "sse"
    reader = worker if rng.random() < 0.5 else 1 - worker
    await follow(soak, b, view, reader, transport, cuts=cuts, leave_at=leave_at, slow=slow)


async def run_id_of(view: View, within: float = 30) -> str | None:
    """The run id, once the reading client has it (a WebSocket start learns it from the
    run's first event), or None."""
    deadline = time.monotonic() + within
    while view.run_id is None and view.failure is None and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    return view.run_id


# ---------------------------------------------------------------------------- the kinds
async def kind_follow(soak: Soak, sc: Scenario, b: Browser) -> None:
    view = view_for(sc)
    if soak.rng.random() >= 0.3:
        await run(soak, sc, b, view)
        return

    async def second_tab() -> None:
        if await run_id_of(view) is None:
            return
        tab = view_for(sc, ".2")
        tab.run_id = view.run_id
        transport = soak.rng.choice(["sse", "ws"])
        await follow(soak, b, tab, soak.rng.randrange(2), transport)

    await asyncio.gather(run(soak, sc, b, view), second_tab())


async def kind_resume(soak: Soak, sc: Scenario, b: Browser) -> None:
    await run(soak, sc, b, view_for(sc), cuts=cut_points(soak, soak.rng.randint(1, 3)))


async def kind_slow(soak: Soak, sc: Scenario, b: Browser) -> None:
    await run(soak, sc, b, view_for(sc), slow=True)


async def kind_drop(soak: Soak, sc: Scenario, b: Browser) -> None:
    await run(soak, sc, b, view_for(sc), leave_at=cut_points(soak, 1)[0])


async def kind_reload(soak: Soak, sc: Scenario, b: Browser) -> None:
    first = view_for(sc)
    await run(soak, sc, b, first, leave_at=cut_points(soak, 1)[0])
    if sc.run_id is None or not first.partial:
        return  # not started, or it ended before the reload point
    await asyncio.sleep(soak.rng.uniform(0, 1.0))
    thread = first.thread_id or b.thread
    worker = soak.rng.randrange(2)
    route = "GET /api/threads/<id>/messages"
    for attempt in range(1, MAX_TROUBLES + 1):  # the reloaded page reads its thread
        try:
            status, _ = await b.call("GET", soak.cluster.bases[worker], f"/api/threads/{thread}/messages", route)
            if status == 200:
                break
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            soak.traffic.incident(route, failure(exc))
        await asyncio.sleep(min(2.0, 0.25 * attempt))
        worker = 1 - worker
    again = view_for(sc, ".reload")
    await follow(soak, b, again, worker, soak.rng.choice(["sse", "ws", "poll"]))


async def kind_stop(soak: Soak, sc: Scenario, b: Browser) -> None:
    view = view_for(sc)
    reader = asyncio.create_task(run(soak, sc, b, view))
    try:
        await asyncio.sleep(soak.rng.uniform(0.5, soak.reply_seconds * 0.8))
        if await run_id_of(view) is not None and view.terminal is None:
            await send_stop(soak, sc, b, view)
    finally:
        await reader


async def send_stop(soak: Soak, sc: Scenario, b: Browser, view: View) -> None:
    """Stop the run from the worker that did not start it (HTTP or a WebSocket command);
    from the other one if that fails (it may be the worker that was killed)."""
    producer = sc.worker if sc.worker is not None else int(view.hops[0][1]) - 1
    via = soak.rng.choice(["http", "ws"])
    sc.stop = {"via": via, "worker": 2 - producer, "sent_at": time.time(), "acked": False}
    for worker in (1 - producer, producer):
        base = soak.cluster.bases[worker]
        if via == "ws":
            acked = await b.ws_command(base, {"command": "stop", "run_id": view.run_id})
        else:
            try:
                status, _ = await b.call("POST", base, f"/api/runs/{view.run_id}/stop",
                                         "POST /api/runs/<id>/stop", {})  # fmt: skip
                acked = status == 202
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                soak.traffic.incident("POST /api/runs/<id>/stop", failure(exc))
                acked = False
        if acked:
            sc.stop.update(acked=True, worker=worker + 1, acked_at=time.time())
            return


KIND_RUNNERS = {
    "follow": kind_follow, "resume": kind_resume, "reload": kind_reload, "slow": kind_slow,
    "stop": kind_stop, "drop": kind_drop,
}  # fmt: skip


def new_scenario(soak: Soak, number: int) -> Scenario:
    rng: random.Random = soak.rng
    kind = rng.choices(list(KINDS), list(KINDS.values()))[0]
    sc = Scenario(number, kind, rng.choice(["native", "ws"]), time.time())
    sc.cancel_on_disconnect = kind == "drop" and rng.random() < 0.5
    return sc
