"""Clients that do not keep up, on a live daphne worker: one that stops reading is cut off
once it is `STREAM_CLIENT_BUFFER_BYTES` behind, so its worker's memory stays bounded, and
it resumes from its last event with nothing lost or repeated; and a user's open streams
are capped per worker (`CHAT_MAX_STREAMS_PER_USER`)."""

import asyncio
import json
import re
import socket
import time
import uuid
from pathlib import Path

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.test import Client

from streaming import events
from streaming.logs.redis import RedisEventLog
from streaming.models import Message, Thread, User
from tests.sse import parse_sse

pytestmark = pytest.mark.django_db(transaction=True)

EVENTS = 40_000
TEXT = "x" * 250  # 40,000 events of about 400 bytes: a 16 MB log, past the kernel's buffers
LIMIT = 256 * 1024


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def long_finished_run(redis_url: str, *, finished: bool = True) -> tuple[str, str]:
    """A user's finished reply whose log is long (or, not `finished`, a reply that has only
    started); its run id and a session cookie."""
    user = User.objects.create(username=f"reader-{uuid.uuid4().hex[:8]}")
    thread = Thread.objects.create(owner=user, title="long")
    Message.objects.create(thread=thread, role="user", content="go", status="completed")
    reply = Message.objects.create(thread=thread, role="assistant", content=TEXT * EVENTS, status="completed")
    run_id = str(reply.pk)
    logged = [events.started(run_id, 1, thread_id=str(thread.pk), model="m")]
    logged += [
        events.delta(run_id, seq, text=TEXT, tokens=1, token_count=seq - 1) for seq in range(2, EVENTS + 2)
    ]
    terminal = events.terminal(
        run_id, EVENTS + 2, type="completed",
        values={"ttft_seconds": 0.1, "token_count": EVENTS, "duration_seconds": 1.0, "tokens_per_second": 1.0},
    )  # fmt: skip

    if not finished:
        logged, terminal = logged[:1], None

    async def write() -> None:
        log = RedisEventLog(redis_url, retention=600, max_events=100_000)
        try:
            for start in range(0, len(logged), 2000):
                await log.append(run_id, logged[start : start + 2000])
            if terminal is not None:
                await log.append(run_id, [terminal], final=True)
        finally:
            await log.close()

    async_to_sync(write)()
    client = Client()
    client.force_login(user)
    return run_id, client.cookies["sessionid"].value


def open_without_reading(port: int, run_id: str, session: str) -> socket.socket:
    """An SSE request from a client that then reads nothing (a tiny receive buffer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"GET /api/runs/{run_id}/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Cookie: sessionid={session}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    return sock


def read_all(sock: socket.socket, timeout: float = 30) -> bytes:
    """Everything the connection still delivers, up to its end (or its reset)."""
    sock.settimeout(timeout)
    chunks = []
    try:
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def seqs_in(raw: bytes) -> list[int]:
    """The seqs of the whole SSE events in a response, in order (each event is one chunk
    of the chunked body, so a cut can only leave the last one unfinished)."""
    return [int(seq) for seq in re.findall(rb"id: (\d+)\ndata: [^\n]*\n\n", raw)]


def test_a_client_that_stops_reading_is_cut_off_and_resumes_without_loss(daphne_server, redis_url) -> None:
    server = daphne_server(REDIS_URL=redis_url, STREAM_CLIENT_BUFFER_BYTES=str(LIMIT))
    run_id, session = long_finished_run(redis_url)
    before = rss_kib(server.process.pid)
    sockets = [open_without_reading(server.port, run_id, session) for _ in range(10)]
    time.sleep(6)  # each stream fills its buffers, then is cut
    grown_mib = (rss_kib(server.process.pid) - before) / 1024
    # Ten clients of a 16 MB log: held whole, that is over 160 MB; cut, it is a page of the
    # backlog (500 events) and LIMIT each, at most.
    assert grown_mib < 40, grown_mib
    got = [seqs_in(read_all(sock)) for sock in sockets]
    for sock in sockets:
        sock.close()
    for seqs in got:
        assert seqs == list(range(1, len(seqs) + 1))
        assert len(seqs) < EVENTS + 2, "cut off before the end"
    # Each resumes from the last event it read, and gets the rest exactly once.
    with httpx.Client(base_url=server.url, cookies={"sessionid": session}, timeout=60) as http:
        for seqs in got[:3]:
            rest = http.get(f"/api/runs/{run_id}/events", headers={"Last-Event-ID": str(seqs[-1])})
            resumed = [event["data"]["seq"] for event in parse_sse(rest.text)]
            assert seqs + resumed == list(range(1, EVENTS + 3))
    assert "fell" in server.log.read_text()  # the worker said why it dropped them


def test_a_users_open_streams_are_capped_per_worker(daphne_server, redis_url) -> None:
    server = daphne_server(REDIS_URL=redis_url, CHAT_MAX_STREAMS_PER_USER="2")
    run_id, session = long_finished_run(redis_url, finished=False)  # its streams stay open
    sockets = [open_without_reading(server.port, run_id, session) for _ in range(2)]
    time.sleep(0.5)
    try:
        with httpx.Client(base_url=server.url, cookies={"sessionid": session}, timeout=30) as http:
            refused = http.get(f"/api/runs/{run_id}/events")
            assert refused.status_code == 429
            assert refused.json() == {"error": "You have too many streams open; close a tab or another connection and try again."}
            refused_ws = asyncio.run(_websocket_close_code(server.port, session))
            assert refused_ws == 4429
    finally:
        for sock in sockets:
            sock.close()
    time.sleep(1)  # the worker sees both go
    with (
        httpx.Client(base_url=server.url, cookies={"sessionid": session}, timeout=60) as http,
        http.stream("GET", f"/api/runs/{run_id}/events") as stream,
    ):
        assert stream.status_code == 200


async def _websocket_close_code(port: int, session: str) -> int | None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async with connect(
        f"ws://127.0.0.1:{port}/ws/stream", origin=f"http://127.0.0.1:{port}",
        additional_headers={"Cookie": f"sessionid={session}"},
    ) as ws:
        first = json.loads(await ws.recv())
        assert first["code"] == "too_many_streams"
        try:
            await ws.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
    return None
