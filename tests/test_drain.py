"""Graceful restart: SIGTERM makes a daphne worker drain (503 for new requests, WebSockets
closed with 1012, native SSE streams ended, its runs finishing or interrupted at
`STREAM_DRAIN_SECONDS`) and exit 0, while clients resume on the other worker exactly."""

import asyncio
import json
import signal
import subprocess
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from streaming.models import Message
from tests.conftest import DaphneServer, guest_session, start_run_over
from tests.sse import parse_sse
from tests.standin import Reply

pytestmark = pytest.mark.django_db(transaction=True)

TEXT = "Grüße, 世界! 🎉 " + " ".join(f"token{i}" for i in range(150)) + " — fin."
SLOW = [f"w{i} " for i in range(400)]
RESTARTING = {"error": "This server is restarting; retry."}
EXIT_MARGIN = 10.0  # seconds past the drain that a worker may take to exit, generously
Event = dict[str, Any]


class Pair:
    """Two workers on the same Redis and database, and a guest session valid on both."""

    def __init__(self, a: DaphneServer, b: DaphneServer) -> None:
        self.a, self.b = a, b
        session = guest_session(a.url)
        self.cookies = session.cookies
        self.cookie_header = "; ".join(f"{name}={value}" for name, value in session.cookies.items())
        session.close()

    def client(self, server: DaphneServer) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=server.url, cookies=self.cookies, timeout=30, headers={"Origin": server.url}
        )

    def socket(self, server: DaphneServer) -> Any:
        return ws_connect(
            f"ws://127.0.0.1:{server.port}/ws/stream", origin=server.url,
            additional_headers={"Cookie": self.cookie_header},
        )


@pytest.fixture
def start_worker(daphne_server, standin, redis_url) -> Callable[..., DaphneServer]:
    def start(**env: str) -> DaphneServer:
        return daphne_server(
            REDIS_URL=redis_url, OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=standin.base_url,
            AGENT_MODEL="gpt-test", AGENT_API="responses", **env,
        )

    return start


async def start_run(pair: Pair, server: DaphneServer) -> str:
    async with pair.client(server) as client:
        return await start_run_over(client)


class SSEReader:
    """Reads an open SSE response in parts: `read(until)` returns the events, in order,
    up to the first for which `until(event)` holds, or up to the end of the response."""

    def __init__(self, response: httpx.Response) -> None:
        self.chunks = response.aiter_text()
        self.buffer = ""
        self.pending: list[Event] = []

    async def read(self, until: Callable[[Event], bool] | None = None) -> list[Event]:
        got: list[Event] = []
        while True:
            while self.pending:
                got.append(event := self.pending.pop(0))
                if until is not None and until(event):
                    return got
            chunk = await anext(self.chunks, None)
            if chunk is None:
                return got
            self.buffer += chunk
            complete, _, self.buffer = self.buffer.rpartition("\n\n")
            for event in parse_sse(complete + "\n\n"):
                assert int(event["id"]) == event["data"]["seq"]
                self.pending.append(event["data"])


async def follow_sse(pair: Pair, server: DaphneServer, run_id: str, *, after: int = 0) -> list[Event]:
    """The run's native SSE on `server` from `after` (as Last-Event-ID) to its end."""
    async with pair.client(server) as client:
        headers = {"Last-Event-ID": str(after)} if after else {}
        async with client.stream("GET", f"/api/runs/{run_id}/events", headers=headers) as response:
            assert response.status_code == 200
            return await SSEReader(response).read()


async def receive(ws: ClientConnection) -> Event:
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


def text_of(got: list[Event]) -> str:
    return "".join(e.get("text", e.get("token", "")) for e in got if e["type"] in ("delta", "token"))


def contiguous(got: list[Event]) -> bool:
    seqs = [e["seq"] for e in got]
    return seqs == list(range(1, len(seqs) + 1))


async def exit_status(server: DaphneServer, drain_seconds: float) -> int:
    """The worker's exit status; it must exit within the drain plus a generous margin."""
    try:
        return await asyncio.to_thread(server.process.wait, drain_seconds + EXIT_MARGIN)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker did not exit:\n{server.log.read_text()}")


async def assert_restarting(pair: Pair, server: DaphneServer, run_id: str) -> None:
    """Every new request to a draining worker is turned away, to be retried elsewhere."""
    async with pair.client(server) as client:
        for method, path in [
            ("GET", "/healthz"), ("GET", "/"), ("GET", f"/api/runs/{run_id}/events"),
            ("POST", "/api/threads"), ("POST", "/api/stream/message"),
        ]:
            response = await client.request(method, path, json={"message": "hi"} if method == "POST" else None)
            assert response.status_code == 503, path
            assert response.headers["Retry-After"] == "1"
            assert response.json() == RESTARTING
    with pytest.raises(InvalidStatus, match="HTTP 403"):
        async with pair.socket(server):
            pass


async def test_sigterm_closes_websockets_with_1012_and_the_client_resumes_on_the_other_worker(
    start_worker, standin
) -> None:
    pair = Pair(start_worker(), start_worker())
    standin.script(Reply(text=TEXT, tps=40))
    run_id = await start_run(pair, pair.a)
    got: list[Event] = []
    async with pair.socket(pair.a) as ws:
        await ws.send(json.dumps({"command": "subscribe", "run_id": run_id, "after": 0}))
        while len([e for e in got if e["type"] == "token"]) < 5:
            got.append(await receive(ws))
        pair.a.process.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                got.append(await receive(ws))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    assert got[-1]["type"] not in ("completed", "error"), "the reply was still generating"
    await assert_restarting(pair, pair.a, run_id)

    # The client resumes on the other worker from the last seq it saw.
    async with pair.socket(pair.b) as ws:
        await ws.send(json.dumps({"command": "subscribe", "run_id": run_id, "after": got[-1]["seq"]}))
        while got[-1]["type"] != "completed":
            got.append(await receive(ws))
    assert contiguous(got)
    assert text_of(got) == TEXT
    assert await exit_status(pair.a, 20) == 0
    reply = await Message.objects.aget(pk=run_id)
    assert (reply.status, reply.content) == ("completed", TEXT)
    assert not standin.requests[0].stream_closed_early


async def test_runs_still_going_at_the_drain_deadline_end_interrupted_with_their_partial_text(
    start_worker, standin
) -> None:
    pair = Pair(start_worker(STREAM_DRAIN_SECONDS="1.5"), start_worker())
    standin.script(Reply(tokens=SLOW, tps=40))
    # A seed stream cannot resume: it keeps streaming through the drain to the run's end.
    async with (
        pair.client(pair.a) as client,
        client.stream("POST", "/api/stream/message", json={"message": "hello"}) as seed,
    ):
        assert seed.status_code == 200
        reader = SSEReader(seed)
        head = await reader.read(until=lambda e: e["type"] == "token" and e["seq"] >= 4)
        run_id = head[0]["run_id"]
        on_b = asyncio.create_task(follow_sse(pair, pair.b, run_id))
        pair.a.process.send_signal(signal.SIGTERM)
        on_a = head + await reader.read()
    on_b_events = await asyncio.wait_for(on_b, 20)
    assert await exit_status(pair.a, 1.5) == 0

    assert on_a[-1]["type"] == "error" and on_a[-1]["status"] == "interrupted"
    assert on_b_events[-1]["type"] == "interrupted"
    assert contiguous(on_a) and contiguous(on_b_events)
    reply = await Message.objects.aget(pk=run_id)
    assert reply.status == "interrupted" and reply.error == on_b_events[-1]["error"] != ""
    assert reply.content == text_of(on_a) == text_of(on_b_events)
    assert reply.content.startswith("w0 w1 w2 ") and len(reply.content) < len("".join(SLOW))
    assert not await Message.objects.filter(status="streaming").aexists()
    record = await asyncio.to_thread(standin.wait_closed_early, 0, 5)
    assert record.tokens_sent < len(SLOW)


async def test_a_native_sse_stream_ends_on_sigterm_and_resumes_on_the_other_worker(
    start_worker, standin
) -> None:
    pair = Pair(start_worker(), start_worker())
    standin.script(Reply(text=TEXT, tps=40))
    run_id = await start_run(pair, pair.a)
    async with (
        pair.client(pair.a) as client,
        client.stream("GET", f"/api/runs/{run_id}/events") as response,
    ):
        assert response.status_code == 200
        reader = SSEReader(response)
        head = await reader.read(until=lambda e: e["type"] == "delta" and e["seq"] >= 4)
        pair.a.process.send_signal(signal.SIGTERM)
        head += await reader.read()  # the stream ends cleanly, before the reply does
    assert head[-1]["type"] not in ("completed", "stopped", "failed", "interrupted")

    tail = await follow_sse(pair, pair.b, run_id, after=head[-1]["seq"])
    assert all(e["seq"] > head[-1]["seq"] for e in tail)
    assert contiguous(head + tail)
    assert tail[-1]["type"] == "completed"
    assert text_of(head + tail) == TEXT
    assert await exit_status(pair.a, 20) == 0
    reply = await Message.objects.aget(pk=run_id)
    assert (reply.status, reply.content) == ("completed", TEXT)


async def test_a_second_sigterm_interrupts_the_runs_without_waiting_for_the_drain(
    start_worker, standin
) -> None:
    pair = Pair(start_worker(STREAM_DRAIN_SECONDS="600"), start_worker())
    standin.script(Reply(tokens=SLOW, tps=40))
    run_id = await start_run(pair, pair.a)
    async with (
        pair.client(pair.b) as client,
        client.stream("GET", f"/api/runs/{run_id}/events") as response,
    ):
        reader = SSEReader(response)
        got = await reader.read(until=lambda e: e["type"] == "delta" and e["seq"] >= 4)
        pair.a.process.send_signal(signal.SIGTERM)
        async with pair.client(pair.a) as on_a:  # draining: turned away
            assert (await on_a.get("/healthz")).status_code == 503
        pair.a.process.send_signal(signal.SIGTERM)
        got += await reader.read()
    assert await exit_status(pair.a, 0) == 0  # well before the 600 s drain
    assert got[-1]["type"] == "interrupted" and contiguous(got)
    reply = await Message.objects.aget(pk=run_id)
    assert (reply.status, reply.content) == ("interrupted", text_of(got))


async def test_a_chatkit_stream_cannot_resume_so_the_drain_lets_it_finish(start_worker, standin) -> None:
    worker = start_worker()
    pair = Pair(worker, worker)
    standin.script(Reply(text=TEXT, tps=40))
    body = {"type": "threads.create", "params": {"input": {
        "content": [{"type": "input_text", "text": "hello"}], "attachments": [], "inference_options": {},
    }}}  # fmt: skip
    deltas: list[str] = []
    async with (
        pair.client(worker) as client,
        client.stream("POST", "/chatkit", json=body) as response,
    ):
        assert response.status_code == 200
        async for line in response.aiter_lines():
            event = json.loads(line[6:]) if line.startswith("data: ") else {}
            if event.get("type") == "thread.item.updated" and "delta" in event["update"]:
                deltas.append(event["update"]["delta"])
                if len(deltas) == 3:
                    worker.process.send_signal(signal.SIGTERM)
    assert "".join(deltas) == TEXT
    assert await exit_status(worker, 20) == 0
    reply = await Message.objects.aget(role="assistant")
    assert (reply.status, reply.content) == ("completed", TEXT)
