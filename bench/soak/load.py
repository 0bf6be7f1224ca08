"""The soak itself: guests, a steady stream of scenarios for `--minutes`, the faults at
their moments (one worker SIGKILLed and restarted, then Redis restarted), memory sampled
throughout, and the wait for every run to end.

Guests are created up front (a real deployment has many client addresses; here they all
come from 127.0.0.1, which the product limits to `CHAT_GUESTS_PER_ADDRESS`), and each is
given at most `GUEST_SLOTS` runs at once and `GUEST_STARTS_PER_MINUTE` starts a minute,
below the product's per-user limits (3 and 20), so a 429 means the limits miscounted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import time
from dataclasses import dataclass, field

import aiohttp
import psycopg
import redis.asyncio as aioredis

from bench.serving.clients import guest
from bench.soak.clients import Browser, Traffic
from bench.soak.cluster import Cluster, Sampler
from bench.soak.scenarios import KIND_RUNNERS, Scenario, new_scenario

GUEST_SLOTS = 2
GUEST_STARTS_PER_MINUTE = 15
SAMPLE_SECONDS = 2.0


@dataclass
class Guest:
    browser: Browser
    holds: list[list[float]] = field(default_factory=list)  # [free at] per run held
    starts: list[float] = field(default_factory=list)


class GuestPool:
    def __init__(self, guests: list[Guest], rng: random.Random) -> None:
        self.guests, self.rng = guests, rng

    def acquire(self) -> tuple[Guest, list[float]] | None:
        """A guest with room for one more run now, and its hold (free it with `release`)."""
        now = time.time()
        free = []
        for g in self.guests:
            g.holds = [h for h in g.holds if h[0] > now]
            g.starts = [t for t in g.starts if t > now - 60]
            if len(g.holds) < GUEST_SLOTS and len(g.starts) < GUEST_STARTS_PER_MINUTE:
                free.append(g)
        if not free:
            return None
        g = self.rng.choice(free)
        hold = [math.inf]
        g.holds.append(hold)
        g.starts.append(now)
        return g, hold


@dataclass
class Soak:
    args: argparse.Namespace
    cluster: Cluster
    db_url: str
    t0: float
    rng: random.Random
    traffic: Traffic
    sampler: Sampler
    http: aiohttp.ClientSession | None = None
    guests: GuestPool | None = None
    scenarios: list[Scenario] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # starts not made, and why
    timeline: dict[str, float] = field(default_factory=dict)  # what happened when (s)
    killed: dict = field(default_factory=dict)
    live_at_redis_restart: list[str] = field(default_factory=list)
    registry_sizes: list[tuple[float, int]] = field(default_factory=list)
    settle_seconds: float | None = None
    streaming_left: int = -1

    @property
    def reply_seconds(self) -> float:
        a = self.args
        return a.first_token_delay + a.tokens / a.tps

    @property
    def expected_events(self) -> int:
        """An average reply's events: started, a delta per token, metrics each second, end."""
        return int(self.args.tokens + self.reply_seconds + 2)

    def at(self, name: str) -> None:
        self.timeline[name] = round(time.time() - self.t0, 2)
        print(f"  {self.timeline[name]:7.1f} s  {name}", flush=True)

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1


async def scenario(soak: Soak, sc: Scenario, hold: list[float], browser: Browser) -> None:
    """Run one scenario within its time budget; the guest's slot is held until its run
    has surely ended (a client that left does not know when that is)."""
    budget = soak.reply_seconds * 3 + 90
    try:
        await asyncio.wait_for(KIND_RUNNERS[sc.kind](soak, sc, browser), budget)
    except TimeoutError:
        for view in sc.views:
            if view.terminal is None and not view.partial and not view.failure:
                view.failure = f"timed out after {budget:.0f} s"
    except Exception as exc:  # a bug in the soak itself: recorded, the soak goes on
        sc.failure = f"scenario crashed: {type(exc).__name__}: {exc}"
    finally:
        ended = all(v.terminal for v in sc.views if not v.partial) and sc.views
        hold[0] = time.time() if ended else sc.started_at + soak.reply_seconds * 3 + 30


async def load(soak: Soak) -> None:
    """Starts at `--rate` a second (Poisson), at most `--streams` scenarios at once."""
    a, rng = soak.args, soak.rng
    end = soak.t0 + a.minutes * 60
    tasks: set[asyncio.Task[None]] = set()
    number = 0
    while (now := time.time()) < end:
        await asyncio.sleep(min(rng.expovariate(a.rate), end - now))
        if time.time() >= end:
            break
        if len(tasks) >= a.streams:
            soak.skip("at --streams scenarios already")
            continue
        assert soak.guests is not None
        got = soak.guests.acquire()
        if got is None:
            soak.skip("no guest with room (per-user limits)")
            continue
        number += 1
        sc = new_scenario(soak, number)
        soak.scenarios.append(sc)
        task = asyncio.create_task(scenario(soak, sc, got[1], got[0].browser))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    soak.at(f"load ends ({number} scenarios started); waiting for {len(tasks)} to finish")
    if tasks:
        await asyncio.wait(tasks, timeout=soak.reply_seconds * 3 + 120)


async def live_runs(soak: Soak) -> dict[str, dict]:
    """The run registry now: run id -> its metadata (the worker producing it)."""
    client = aioredis.Redis.from_url(soak.cluster.redis_url, socket_timeout=5)
    try:
        raw = await client.hgetall("chat:active:runs")
    finally:
        await client.aclose()
    return {k.decode(): json.loads(v) for k, v in raw.items()}


async def last_event(soak: Soak, run_id: str) -> dict | None:
    client = aioredis.Redis.from_url(soak.cluster.redis_url, socket_timeout=5)
    try:
        rows = await client.xrevrange(f"chat:log:{run_id}", count=1)
    finally:
        await client.aclose()
    return json.loads(rows[0][1][b"e"]) if rows else None


async def faults(soak: Soak) -> None:
    """Midway: SIGKILL one worker (its live runs, read from the registry just before, must
    end `interrupted`, reaped by the other) and start it again after `--restart-after`;
    later, restart Redis (`--redis-down` seconds away)."""
    a = soak.args
    await asyncio.sleep(max(0.0, soak.t0 + a.kill_at * a.minutes * 60 - time.time()))
    victim = soak.rng.randrange(2)
    worker = soak.cluster.workers[victim]
    assert worker.proc is not None
    pid = worker.proc.pid
    before = await live_runs(soak)
    mine = sorted(r for r, meta in before.items() if meta["worker"].rsplit(":", 2)[1] == str(pid))
    killed_at = soak.cluster.kill_worker(victim)
    soak.at(f"worker{victim + 1} (pid {pid}) killed with SIGKILL, producing {len(mine)} runs")
    ended = [r for r in mine if ((await last_event(soak, r)) or {}).get("type") in TERMINAL_TYPES]
    soak.killed = {"worker": victim + 1, "pid": pid, "at": killed_at, "runs": mine,
                   "ended_as_killed": ended}  # fmt: skip
    await asyncio.sleep(a.restart_after)
    await asyncio.to_thread(soak.cluster.start_worker, victim)
    soak.at(f"worker{victim + 1} restarted (pid {worker.proc.pid}) and healthy")
    await asyncio.sleep(max(0.0, soak.t0 + a.redis_at * a.minutes * 60 - time.time()))
    soak.live_at_redis_restart = sorted(await live_runs(soak))
    soak.at(f"Redis stopping ({len(soak.live_at_redis_restart)} runs live)")
    stopped, up = await asyncio.to_thread(soak.cluster.restart_redis, a.redis_down)
    soak.timeline["redis stopped"] = round(stopped - soak.t0, 2)
    soak.at("Redis back (empty)")


TERMINAL_TYPES = ("completed", "stopped", "failed", "interrupted")


async def sample(soak: Soak, stop: asyncio.Event) -> None:
    """Memory and CPU of the processes, and the number of live runs, every few seconds."""
    while not stop.is_set():
        soak.sampler.sample()
        with contextlib.suppress(Exception):  # Redis may be restarting
            runs = await live_runs(soak)
            soak.registry_sizes.append((round(time.time() - soak.t0, 1), len(runs)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_SECONDS)


def streaming_rows(db_url: str) -> int:
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM streaming_message WHERE status = 'streaming'")
        return row.fetchone()[0]


async def settle(soak: Soak) -> None:
    """Wait (at most `--settle` seconds) until no reply is `streaming` in the database."""
    t = time.time()
    while True:
        soak.streaming_left = await asyncio.to_thread(streaming_rows, soak.db_url)
        if soak.streaming_left == 0 or time.time() - t > soak.args.settle:
            break
        await asyncio.sleep(1)
    soak.settle_seconds = round(time.time() - t, 1)


async def drive(soak: Soak) -> None:
    a = soak.args
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=40)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        soak.http = http
        made = []
        for i in range(a.guests):  # one at a time: a burst of new sessions is not the point
            client = await guest(http, soak.cluster.bases[i % 2], i % 2)
            made.append(Guest(Browser(http, soak.traffic, client.cookies, client.thread, soak.rng)))
        soak.guests = GuestPool(made, soak.rng)
        soak.t0 = soak.traffic.t0 = soak.sampler.t0 = time.time()
        soak.at(f"load begins: {a.guests} guests, {a.rate:g} starts/s, up to {a.streams} at once")
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample(soak, stop))
        faulting = asyncio.create_task(faults(soak))
        try:
            await load(soak)
            if not faulting.done():  # a soak shorter than its faults' schedule
                faulting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await faulting
            await settle(soak)
            soak.at(f"settled: {soak.streaming_left} replies streaming in the database")
        finally:
            stop.set()
            await sampler
            soak.sampler.sample()
