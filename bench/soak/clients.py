"""A browser of the soak: a guest's session, and the three ways it reads a run, each of
which may stop at a chosen seq (a disconnect), read slowly, or break (a worker killed,
Redis restarting), leaving the caller to resume from the last seq it saw:

- SSE, `GET /api/runs/<id>/events`, resumed with `Last-Event-ID`;
- the WebSocket `/ws/stream?wire=native`, `start` or `subscribe` with `after` (a slow
  reader there uses `pause` and `resume`);
- polling, `GET /api/runs/<id>/poll?after=<seq>&wait=5`.

Every event a client keeps goes into its `View` of the run, which records what a page
would show (the deltas' text) and everything that checks it (seqs, duplicates, gaps, the
terminal event). Every HTTP status and every failure is counted in `Traffic`.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from bench.fanout import TERMINAL, describe_error, sse_events

SLOW_PAUSES = (0.2, 1.5)  # seconds a slow reader waits between reads
UNEXPECTED = "The command failed unexpectedly"  # the WebSocket's answer to a command that raised
POLL_WAIT = 5  # seconds a long poll is held


@dataclass
class View:
    """One client's reading of one run, over as many connections as it took."""

    client: str  # "<scenario kind>#<number>[.<tab>]"
    run_id: str | None = None
    thread_id: str | None = None  # from the `started` event
    after: int = 0  # the seq it began after (0: from the start)
    seqs: list[int] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)  # delta texts, in order
    terminal: str | None = None
    duplicates: int = 0  # events received again (seq at or below the last kept)
    gaps: list[tuple[int, int]] = field(default_factory=list)  # missing seqs, first..last
    hops: list[str] = field(default_factory=list)  # "<worker>:<transport>@<after>" per read
    troubles: list[str] = field(default_factory=list)  # failures it resumed after
    failure: str | None = None  # why it could not read on to the end
    gone: bool = False  # the log was not there (HTTP 410, an expired/lost log)
    partial: bool = False  # it left on purpose before the end (a drop, a reload)
    ended_at: float | None = None  # when it read the terminal event

    @property
    def last(self) -> int:
        return self.seqs[-1] if self.seqs else self.after

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def take(self, event: dict) -> bool:
        """Keep one run event; whether it was the terminal one."""
        seq = event["seq"]
        if seq <= self.last:
            self.duplicates += 1
            return False
        if seq != self.last + 1:
            self.gaps.append((self.last + 1, seq - 1))
        self.seqs.append(seq)
        kind = event.get("type")
        if kind == "started":
            self.thread_id = event.get("thread_id")
        elif kind == "delta":
            self.parts.append(event["text"])
        elif kind in TERMINAL:
            self.terminal = kind
            self.ended_at = time.time()
            return True
        return False


@dataclass
class Outcome:
    """How one read ended: `end` (terminal event), `cut` (left at the chosen seq), `gone`
    (no log), `refused` (a start refused, e.g. 429), `error` (broke: resume elsewhere)."""

    kind: str
    detail: str = ""


class Traffic:
    """Every answer's status by route, and every failure with when it happened."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.incidents: list[tuple[float, str, str]] = []  # (seconds, route, what)
        self.ws_failures = 0  # WebSocket commands answered "failed unexpectedly"

    def status(self, route: str, status: int) -> None:
        self.statuses[(route, status)] += 1
        if status >= 400 and status != 410:
            self.incident(route, f"HTTP {status}")

    def incident(self, route: str, what: str) -> None:
        self.incidents.append((round(time.time() - self.t0, 2), route, what[:200]))


def failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


class Browser:
    """A guest's session (cookie, thread) talking to the workers directly, as nginx would
    pass it on: same-site `Origin`, the session cookie."""

    def __init__(
        self, http: aiohttp.ClientSession, traffic: Traffic, cookies: str, thread: str,
        rng: random.Random,
    ) -> None:  # fmt: skip
        self.http, self.traffic, self.cookies, self.thread, self.rng = (
            http, traffic, cookies, thread, rng
        )  # fmt: skip

    def headers(self, base: str, **extra: str) -> dict[str, str]:
        return {"Origin": base, "Cookie": self.cookies, **extra}

    async def call(
        self, method: str, base: str, path: str, route: str, body: dict | None = None
    ) -> tuple[int, dict | None]:
        """One short request; (status, JSON body or None). Raises on a broken connection."""
        async with self.http.request(
            method, base + path, json=body, headers=self.headers(base),
            timeout=aiohttp.ClientTimeout(total=40, sock_connect=5),
        ) as resp:  # fmt: skip
            self.traffic.status(route, resp.status)
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            await resp.read()
            return resp.status, None

    def ended_badly(self, route: str, what: str) -> Outcome:
        """A stream's error payload: its log is gone (`expired`), or it failed (resume)."""
        if UNEXPECTED in what:  # a command that raised: the WebSocket's HTTP 500
            self.traffic.ws_failures += 1
        self.traffic.incident(route, what)
        return Outcome("gone" if "expired" in what else "error", what)

    # ------------------------------------------------------------------ SSE
    async def read_sse(
        self, base: str, view: View, *, stop_at: int | None, slow: bool
    ) -> Outcome:
        route = "GET /api/runs/<id>/events"
        headers = self.headers(base)
        if view.last:
            headers["Last-Event-ID"] = str(view.last)
        try:
            async with self.http.get(
                f"{base}/api/runs/{view.run_id}/events", headers=headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=40),
            ) as resp:  # fmt: skip
                self.traffic.status(route, resp.status)
                if resp.status == 410:
                    return Outcome("gone", await describe_error(resp))
                if resp.status != 200:
                    return Outcome("error", await describe_error(resp))
                buffer = b""
                async for chunk in resp.content.iter_any():
                    events, buffer = sse_events(buffer + chunk)
                    for event in events:
                        if "seq" not in event:  # the native shape's error payload
                            return self.ended_badly(route, f"error event: {event.get('error')}")
                        if view.take(event):
                            return Outcome("end")
                        if stop_at is not None and view.last >= stop_at:
                            return Outcome("cut")
                    if slow:
                        await asyncio.sleep(self.rng.uniform(*SLOW_PAUSES))
                # The stream ended early: the worker is draining (it said `retry: 250`).
                return Outcome("error", "SSE stream ended before the terminal event")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self.traffic.incident(route, failure(exc))
            return Outcome("error", failure(exc))

    # ------------------------------------------------------------------ polling
    async def read_poll(
        self, base: str, view: View, *, stop_at: int | None, slow: bool
    ) -> Outcome:
        route = "GET /api/runs/<id>/poll"
        for _ in range(1000):  # bounded: a reply is a few hundred events at most
            try:
                status, body = await self.call(
                    "GET", base, f"/api/runs/{view.run_id}/poll?after={view.last}&wait={POLL_WAIT}",
                    route,
                )  # fmt: skip
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                self.traffic.incident(route, failure(exc))
                return Outcome("error", failure(exc))
            if status != 200 or body is None:
                return Outcome("error", f"HTTP {status}: {body}")
            for event in body["events"]:
                if view.take(event):
                    return Outcome("end")
                if stop_at is not None and view.last >= stop_at:
                    return Outcome("cut")
            if body["complete"]:  # complete without a terminal event: the log is gone
                return Outcome("gone", f"poll complete, status {body['status']}, no terminal event")
            if slow:
                await asyncio.sleep(self.rng.uniform(*SLOW_PAUSES))
        return Outcome("error", "too many polls")

    # ------------------------------------------------------------------ WebSocket
    async def read_ws(
        self, base: str, view: View, *, stop_at: int | None, slow: bool,
        start: dict | None = None,
    ) -> Outcome:  # fmt: skip
        """`start` (a start command, until the run exists) or `subscribe` after the last
        seq; then the run's events. A slow reader pauses delivery now and then."""
        route = "WS /ws/stream"
        url = base.replace("http://", "ws://") + "/ws/stream?wire=native"
        command = (
            start if view.run_id is None and start is not None
            else {"command": "subscribe", "run_id": view.run_id, "after": view.last}
        )  # fmt: skip
        try:
            async with self.http.ws_connect(
                url, headers=self.headers(base), heartbeat=None, max_msg_size=0,
                timeout=aiohttp.ClientWSTimeout(ws_receive=40, ws_close=5),
            ) as ws:  # fmt: skip
                self.traffic.status(route, 101)
                await ws.send_str(json.dumps(command))
                pause_after = self.rng.randint(5, 20) if slow else None
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    data = json.loads(msg.data)
                    kind = data.get("type")
                    if "seq" not in data:  # the connection's own messages
                        if kind == "error" and data.get("code") == "rate_limited":
                            return Outcome("refused", data["error"])
                        if kind == "error" and view.run_id is None and data.get("run_id"):
                            view.run_id = data["run_id"]  # a start's run it cannot follow
                        if kind == "error" and data.get("run_id") in (None, view.run_id):
                            return self.ended_badly(route, f"error message: {data.get('error')}")
                        continue  # paused, resumed, run notices of other runs
                    if view.run_id is None:
                        view.run_id = data["run_id"]
                    if data["run_id"] != view.run_id:
                        continue  # another run of a thread this connection watches
                    if view.take(data):
                        return Outcome("end")
                    if stop_at is not None and view.last >= stop_at:
                        return Outcome("cut")
                    if pause_after is not None and len(view.seqs) % pause_after == 0:
                        await ws.send_str('{"command": "pause"}')
                        await asyncio.sleep(self.rng.uniform(*SLOW_PAUSES))
                        await ws.send_str('{"command": "resume"}')
                self.traffic.incident(route, f"closed {ws.close_code}")
                return Outcome("error", f"WebSocket closed ({ws.close_code}) before the end")
        except aiohttp.WSServerHandshakeError as exc:
            self.traffic.status(route, exc.status)
            return Outcome("error", failure(exc))
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self.traffic.incident(route, failure(exc))
            return Outcome("error", failure(exc))

    async def ws_command(self, base: str, command: dict) -> bool:
        """Send one command on a connection of its own, and make sure it was handled (a
        connection handles its commands in order: a `pause` answered comes after it)."""
        route = "WS /ws/stream"
        url = base.replace("http://", "ws://") + "/ws/stream?wire=native"
        try:
            async with self.http.ws_connect(
                url, headers=self.headers(base), heartbeat=None,
                timeout=aiohttp.ClientWSTimeout(ws_receive=15, ws_close=5),
            ) as ws:  # fmt: skip
                self.traffic.status(route, 101)
                await ws.send_str(json.dumps(command))
                await ws.send_str('{"command": "pause"}')
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    if json.loads(msg.data).get("type") == "paused":
                        return True
        except aiohttp.WSServerHandshakeError as exc:
            self.traffic.status(route, exc.status)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self.traffic.incident(route, failure(exc))
        return False
