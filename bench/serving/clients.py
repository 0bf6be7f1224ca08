"""The load's clients: one coroutine per client path, each reading one reply to its end and
recording every stamped token (index, the stand-in's send time, this client's read time).

Paths: the seed-shaped SSE endpoint (`POST /api/stream/message`, the project's and the seed
Example 1's), the native API (`POST /api/threads/<id>/messages`, then
`GET /api/runs/<run_id>/events`, read by `bench.fanout.follow`) and the WebSocket
`/ws/stream` (`{"command": "start"}`, the project's and the seed Example 2's). Plus idle
WebSockets, opened and held to measure memory per connection.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from bench.fanout import (
    TERMINAL,
    Subscription,
    describe_error,
    follow,
    sse_events,
    stamped_tokens,
)

MESSAGE = "bench"


@dataclass
class Stream(Subscription):
    """One client's reply (`run`: the client's number, `worker`: the process it used)."""

    requested_at: float = 0.0  # when the client sent its request
    status: int | None = None  # HTTP status, 101 for a WebSocket


@dataclass
class Client:
    """What a client needs to reach one server process."""

    base: str  # http://127.0.0.1:<port>
    cookies: str = ""  # a guest session (`GET /` first), or none for the seed apps
    thread: str = ""  # the guest's thread, for the native API
    worker: int = 0  # which of the system's processes `base` is

    def headers(self) -> dict[str, str]:
        """A browser's headers on a same-site request: Origin, and the session cookie."""
        headers = {"Origin": self.base}
        if self.cookies:
            headers["Cookie"] = self.cookies
        return headers


def take_tokens(stream: Stream, carry: str, text: str, received: float) -> str:
    tokens, carry = stamped_tokens(carry, text)
    for index, stamp in tokens:
        stream.indices.append(index)
        stream.stamps.append(stamp)
        stream.received.append(received)
    return carry


def on_event(stream: Stream, event: dict, carry: str, received: float, last: int) -> tuple[str, bool]:
    """Apply one seed-shaped event (`{"type": "token", "token"}`, `error`, terminal ones);
    the new carry, and whether the reply is over. Without a terminal event in the shape,
    the reply is over at its last token (`last`, the seed WebSocket's only end)."""
    kind = event.get("type")
    if kind == "token":
        carry = take_tokens(stream, carry, event.get("token") or "", received)
        return carry, last in stream.indices[-3:]
    if kind == "error":
        stream.error = f"error event: {event.get('error')}"
        return carry, True
    if kind in TERMINAL:
        stream.terminal = kind
        return carry, True
    return carry, False  # started, metrics, ...


async def seed_sse(http: aiohttp.ClientSession, client: Client, stream: Stream, last: int) -> None:
    """`POST /api/stream/message {"message"}` and read the SSE reply to its end (the seed's
    Example 1 ends it by closing the response; the project also sends `completed`)."""
    stream.requested_at = time.time()
    try:
        async with http.post(
            f"{client.base}/api/stream/message", json={"message": MESSAGE},
            headers=client.headers(),
        ) as resp:  # fmt: skip
            stream.status = resp.status
            if resp.status != 200:
                stream.error = await describe_error(resp)
                return
            stream.opened_at = time.time()
            buffer, carry = b"", ""
            async for chunk in resp.content.iter_any():
                received = time.time()
                events, buffer = sse_events(buffer + chunk)
                for event in events:
                    carry, over = on_event(stream, event, carry, received, last=-1)
                    if over:
                        return
            stream.terminal = stream.terminal or "eof"
    except Exception as exc:  # recorded, reported; the benchmark carries on
        stream.error = f"{type(exc).__name__}: {exc}"


async def native_sse(
    http: aiohttp.ClientSession, client: Client, stream: Stream, last: int
) -> None:
    """`POST /api/threads/<id>/messages`, then follow the run's SSE events."""
    stream.requested_at = time.time()
    try:
        async with http.post(
            f"{client.base}/api/threads/{client.thread}/messages", json={"message": MESSAGE},
            headers=client.headers(),
        ) as resp:  # fmt: skip
            stream.status = resp.status
            if resp.status != 201:
                stream.error = await describe_error(resp)
                return
            run_id = (await resp.json())["run_id"]
    except Exception as exc:
        stream.error = f"start: {type(exc).__name__}: {exc}"
        return
    await follow(http, client.base, run_id, stream, client.cookies)


async def websocket(
    http: aiohttp.ClientSession, client: Client, stream: Stream, last: int
) -> None:
    """`/ws/stream`: send `{"command": "start", "message"}`, read token events until a
    terminal event or (the seed's Example 2 sends none) the last token."""
    stream.requested_at = time.time()
    url = client.base.replace("http://", "ws://") + "/ws/stream"
    try:
        async with http.ws_connect(url, headers=client.headers(), max_msg_size=0) as ws:
            stream.status = 101
            stream.opened_at = time.time()
            await ws.send_str(json.dumps({"command": "start", "message": MESSAGE}))
            carry = ""
            async for msg in ws:
                received = time.time()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    stream.error = f"WebSocket {msg.type.name} before the reply ended"
                    return
                carry, over = on_event(stream, json.loads(msg.data), carry, received, last)
                if over:
                    if stream.terminal is None and stream.error is None:
                        stream.terminal = "last token"
                    return
            stream.error = "WebSocket closed before the reply ended"
    except Exception as exc:
        stream.error = f"{type(exc).__name__}: {exc}"


PATHS: dict[str, Callable[[aiohttp.ClientSession, Client, Stream, int], Awaitable[None]]] = {
    "seed-sse": seed_sse,
    "native-sse": native_sse,
    "websocket": websocket,
}


async def run_streams(
    http: aiohttp.ClientSession, path: str, clients: list[Client], tokens: int,
    budget: float, *, terminal_event: bool = True, ramp: float = 0.0,
) -> tuple[list[Stream], float, float]:  # fmt: skip
    """Run one stream per client at once (spread over `ramp` seconds); the streams, when
    the first request went out and when the last stream ended. Bounded by `budget`.
    Without `terminal_event` (the seed's WebSocket) a reply ends at its last token."""
    streams = [Stream(i, client.worker) for i, client in enumerate(clients)]
    last = -1 if terminal_event else tokens - 1
    read = PATHS[path]

    async def one(i: int) -> None:
        if ramp:
            await asyncio.sleep(ramp * i / len(clients))
        await read(http, clients[i], streams[i], last)

    started = time.time()
    tasks = [asyncio.create_task(one(i)) for i in range(len(clients))]
    _, pending = await asyncio.wait(tasks, timeout=budget)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5)
    for stream, task in zip(streams, tasks, strict=True):
        if task in pending and not stream.error:
            stream.error = "timed out"
    return streams, started, time.time()


async def open_idle(
    http: aiohttp.ClientSession, clients: list[Client], parallel: int = 50
) -> tuple[list[aiohttp.ClientWebSocketResponse], list[str]]:
    """Open one WebSocket per client and leave it idle; the open ones and the failures."""
    limit = asyncio.Semaphore(parallel)
    errors: list[str] = []

    async def one(client: Client) -> aiohttp.ClientWebSocketResponse | None:
        async with limit:
            url = client.base.replace("http://", "ws://") + "/ws/stream"
            try:
                return await asyncio.wait_for(
                    http.ws_connect(url, headers=client.headers(), heartbeat=None), 20
                )
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return None

    sockets = await asyncio.gather(*(one(c) for c in clients))
    return [ws for ws in sockets if ws is not None], errors


async def guest(http: aiohttp.ClientSession, base: str, worker: int = 0) -> Client:
    """A browser's first visit, as the chat page makes it: `GET /`, then `POST /api/session`
    (its guest, and the session cookie every later request carries), then a thread."""
    async with http.get(f"{base}/") as resp:
        if resp.status != 200:
            raise RuntimeError(f"GET / failed: {await describe_error(resp)}")
        cookies = {c.key: c.value for c in resp.cookies.values()}
    client = Client(base, "; ".join(f"{k}={v}" for k, v in cookies.items()), worker=worker)
    async with http.post(f"{base}/api/session", json={}, headers=client.headers()) as resp:
        if resp.status != 200:
            raise RuntimeError(f"POST /api/session failed: {await describe_error(resp)}")
        cookies |= {c.key: c.value for c in resp.cookies.values()}
    client.cookies = "; ".join(f"{k}={v}" for k, v in cookies.items())
    async with http.post(f"{base}/api/threads", json={}, headers=client.headers()) as resp:
        if resp.status != 201:
            raise RuntimeError(f"creating a thread failed: {await describe_error(resp)}")
        client.thread = (await resp.json())["id"]
    return client


async def guests(http: aiohttp.ClientSession, bases: list[str], count: int) -> list[Client]:
    """`count` guests, alternately on each process (8 at a time)."""
    limit = asyncio.Semaphore(8)

    async def one(i: int) -> Client:
        async with limit:
            return await guest(http, bases[i % len(bases)], i % len(bases))

    return list(await asyncio.gather(*(one(i) for i in range(count))))
