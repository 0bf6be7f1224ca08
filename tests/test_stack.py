"""The scale-out stack end to end (deploy/twin.py): Debian's nginx, rendered from the
template docker-compose.yml mounts, in front of two daphne workers on PostgreSQL and a
Redis of this module's own (so that it can be restarted), the model behind the stand-in
server. Clients go through nginx, or straight to one worker."""

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from deploy.twin import Stack, Worker, http_status
from streaming.logs.redis import RedisEventLog
from streaming.models import Message, Thread
from tests.conftest import ROOT, daphne_env, free_port, guest_session, start_run_over
from tests.sse import parse_sse
from tests.standin import Reply

pytestmark = pytest.mark.django_db(transaction=True)

TEXT = "Grüße, 世界! 🎉 " + " ".join(f"token{i}" for i in range(120)) + " — fin."
WORKER_TTL = 1.5
REAP_INTERVAL = 0.3
DRAIN_SECONDS = 6
WRITE_RETRY_SECONDS = 15  # streaming/producer.py: how long appends are retried
LOGIN_FAILURES_PER_ADDRESS = 5  # an hour's worth, so that no window ends mid-test
TERMINAL = {"completed", "stopped", "failed", "interrupted"}


class RedisServer:
    """A redis-server on a free port, stopped and started again on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        with (self.dir / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
                stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if redis.Redis.from_url(self.url, socket_timeout=1).ping():
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: run the suite with scripts/test.sh")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


def stack_env(standin_server, redis_server: RedisServer) -> dict[str, str]:
    return daphne_env(
        REDIS_URL=redis_server.url,
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=standin_server.base_url,
        AGENT_MODEL="gpt-test",
        STREAM_WORKER_TTL=str(WORKER_TTL),
        STREAM_REAP_INTERVAL=str(REAP_INTERVAL),
        STREAM_IDLE_CHECK_SECONDS="1",
        STREAM_DRAIN_SECONDS=str(DRAIN_SECONDS),
        DATABASE_POOL_SIZE="3",
        LOGIN_FAILURES_PER_ADDRESS=f"{LOGIN_FAILURES_PER_ADDRESS}/h",
    )


@pytest.fixture(scope="module")
def twin(django_db_setup, django_db_blocker, standin_server, redis_server) -> Iterator[Stack]:
    """nginx and two workers, shared by this module's tests."""
    with django_db_blocker.unblock():
        env = stack_env(standin_server, redis_server)
    with Stack(workers=2, port=free_port(), env=env) as stack:
        yield stack


@pytest.fixture
def stack(twin: Stack, redis_server: RedisServer, standin, transactional_db) -> Stack:
    """The stack, whole again after a test that stopped a part of it."""
    if not redis_server.alive():
        redis_server.start()
    for index, worker in enumerate(twin.workers):
        if not worker.alive():
            twin.restart_worker(index)
    return twin


@pytest.fixture
def cookies(stack: Stack) -> httpx.Cookies:
    """A guest session, opened through nginx (sessions live in the database)."""
    return guest_session(stack.url).cookies


def client(url: str, cookies: httpx.Cookies) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, cookies=cookies, headers={"Origin": url}, timeout=30)


def ws_url(http_url: str) -> str:
    return http_url.replace("http://", "ws://", 1) + "/ws/stream"


def cookie_header(cookies: httpx.Cookies) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}


async def start_run(url: str, cookies: httpx.Cookies, **body) -> str:
    async with client(url, cookies) as http:
        return await start_run_over(http, **body)


async def read_sse(
    url: str, cookies: httpx.Cookies, run_id: str, *, arrived: list[float] | None = None
) -> list[dict]:
    """The run's events over SSE from `url`; `arrived` gets each one's arrival time."""
    got: list[dict] = []
    buffer = ""
    async with client(url, cookies) as http, http.stream("GET", f"/api/runs/{run_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for chunk in response.aiter_text():
            buffer += chunk
            complete, _, buffer = buffer.rpartition("\n\n")
            for event in parse_sse(complete + "\n\n"):
                got.append(event["data"])
                if arrived is not None:
                    arrived.append(time.monotonic())
    return got


async def ws_events(ws: ClientConnection, got: list[dict], timeout: float = 20) -> list[dict]:
    """Append the WebSocket's events to `got` until a run's terminal event."""
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if event["type"] == "error" and "status" not in event:
            raise AssertionError(f"error event: {event}")
        got.append(event)
        if event["type"] in ("completed", "stopped", "error"):
            return got


def text_of(got: list[dict]) -> str:
    return "".join(e["text"] for e in got if e["type"] == "delta")


def ws_text(got: list[dict]) -> str:
    return "".join(e["token"] for e in got if e["type"] == "token")


def assert_exact_sequence(got: list[dict]) -> None:
    assert [e["seq"] for e in got] == list(range(1, len(got) + 1))


async def wait_for_status(run_id: str, timeout: float) -> Message:
    deadline = time.monotonic() + timeout
    while True:
        reply = await Message.objects.aget(pk=run_id)
        if reply.status in TERMINAL or time.monotonic() > deadline:
            return reply
        await asyncio.sleep(0.1)


async def producing_worker(stack: Stack, redis_server: RedisServer, run_id: str) -> Worker:
    """The worker generating `run_id`, from the run registry (`host:pid:nonce`)."""
    raw = await asyncio.to_thread(
        redis.Redis.from_url(redis_server.url).hget, "chat:active:runs", run_id
    )
    assert raw is not None, "the run is not registered (it ended already?)"
    pid = int(json.loads(raw)["worker"].split(":")[-2])
    return next(worker for worker in stack.workers if worker.pid == pid)


async def test_websocket_on_one_worker_and_sse_on_the_other_follow_a_run_started_through_nginx(
    stack: Stack, standin, cookies
) -> None:
    standin.script(Reply(text=TEXT, tps=150))
    run_id = await start_run(stack.url, cookies)
    one, two = stack.workers

    async def over_websocket() -> list[dict]:
        async with ws_connect(ws_url(one.url), origin=one.url, additional_headers=cookie_header(cookies)) as ws:
            await ws.send(json.dumps({"command": "subscribe", "run_id": run_id, "after": 0}))
            return await ws_events(ws, [])

    on_ws, on_sse = await asyncio.gather(over_websocket(), read_sse(two.url, cookies, run_id))
    assert_exact_sequence(on_ws)
    assert_exact_sequence(on_sse)
    assert on_ws[-1]["type"] == on_sse[-1]["type"] == "completed"
    assert ws_text(on_ws) == text_of(on_sse) == TEXT
    reply = await Message.objects.aget(pk=run_id)
    assert reply.status == "completed" and reply.content == TEXT


async def test_a_chat_through_nginx_alone_streams_unbuffered(stack: Stack, standin, cookies) -> None:
    slow = [f"w{i} " for i in range(40)]
    standin.script(Reply(text=TEXT, tps=150), Reply(tokens=slow, tps=20))

    # WebSocket through nginx's upgrade: start a run and follow it to the end.
    async with ws_connect(ws_url(stack.url), origin=stack.url, additional_headers=cookie_header(cookies)) as ws:
        await ws.send(json.dumps({"command": "start", "message": "hello"}))
        got = await ws_events(ws, [])
    assert got[0]["type"] == "started" and got[-1]["type"] == "completed"
    assert ws_text(got) == TEXT

    # SSE through nginx: events arrive while the run is still generating (nothing
    # waits in a proxy buffer for the response to end).
    run_id = await start_run(stack.url, cookies)
    arrived: list[float] = []
    follower = asyncio.create_task(read_sse(stack.url, cookies, run_id, arrived=arrived))
    while len(arrived) < 2:  # `started`, then the first delta
        await asyncio.sleep(0.01)
    status_at_first_delta = (await Message.objects.aget(pk=run_id)).status
    got = await asyncio.wait_for(follower, 20)
    assert status_at_first_delta == "streaming"
    assert got[-1]["type"] == "completed" and text_of(got) == "".join(slow)
    deltas = [t for t, e in zip(arrived, got, strict=True) if e["type"] == "delta"]
    assert deltas[-1] - deltas[0] > 1.0  # spread over the reply's two seconds, not in one burst


async def test_a_stop_sent_through_worker_two_stops_the_run_on_worker_one(stack: Stack, standin, cookies) -> None:
    standin.script(Reply(tokens=[f"w{i} " for i in range(400)], tps=40))
    one, two = stack.workers
    run_id = await start_run(one.url, cookies)

    async def stop_soon() -> None:
        await asyncio.to_thread(standin.wait_for, lambda reqs: reqs and reqs[0].tokens_sent >= 10)
        async with client(two.url, cookies) as http:
            response = await http.post(f"/api/runs/{run_id}/stop", json={})
            assert response.status_code == 202

    got, _ = await asyncio.gather(read_sse(two.url, cookies, run_id), stop_soon())
    assert got[-1]["type"] == "stopped"
    record = await asyncio.to_thread(standin.wait_closed_early, 0, 5)
    assert record.stream_closed_early and record.tokens_sent < 400
    reply = await Message.objects.aget(pk=run_id)
    assert reply.status == "stopped" and reply.content == text_of(got)
    assert 10 <= reply.token_count < 400


async def test_kill_9_of_the_producing_worker_ends_its_run_interrupted(stack: Stack, standin, cookies) -> None:
    standin.script(Reply(tokens=[f"w{i} " for i in range(400)], tps=40))
    one, two = stack.workers
    run_id = await start_run(one.url, cookies)
    follower = asyncio.create_task(read_sse(two.url, cookies, run_id))
    await asyncio.to_thread(standin.wait_for, lambda reqs: reqs and reqs[0].tokens_sent >= 10)
    await asyncio.sleep(0.3)  # let some text reach the log
    one.kill()
    killed_at = time.monotonic()
    got = await asyncio.wait_for(follower, 15)
    waited = time.monotonic() - killed_at

    assert got[-1]["type"] == "interrupted"
    # The bound: the heartbeat lapses (TTL), the silence is confirmed (TTL), a reap pass.
    assert waited < 2 * WORKER_TTL + 5 * REAP_INTERVAL + 2
    reply = await Message.objects.aget(pk=run_id)
    assert reply.status == "interrupted" and reply.error
    assert reply.content == text_of(got) and reply.content.startswith("w0 w1 w2 ")
    # nginx sends what would have gone to the dead worker to the live one.
    assert [http_status(stack.port) for _ in range(4)] == [200] * 4


def test_forwarding_headers_a_client_forges_stop_at_nginx(stack: Stack) -> None:
    """A client's own X-Forwarded-For and X-Forwarded-Proto do not reach Django: it sees
    the address nginx saw (so every forged address counts against the same per-address
    log-in limit) and the scheme nginx served (so an Origin claiming https fails the CSRF
    check of a plain-HTTP request)."""
    with httpx.Client(base_url=stack.url, timeout=30) as http:
        assert http.get("/accounts/login/").status_code == 200
        token = http.cookies["csrftoken"]

        def log_in(address: str, scheme: str) -> int:
            headers = {
                "X-Forwarded-For": address, "X-Forwarded-Proto": "https",
                "Origin": f"{scheme}://127.0.0.1:{stack.port}",
            }
            form = {"csrfmiddlewaretoken": token, "username": f"nobody-{address}", "password": "x"}
            return http.post("/accounts/login/", data=form, headers=headers).status_code

        assert log_in("6.6.6.6", "https") == 403  # Django saw http: not its own origin
        statuses = [log_in(f"6.6.6.{i}", "http") for i in range(LOGIN_FAILURES_PER_ADDRESS + 1)]
    assert statuses == [200] * LOGIN_FAILURES_PER_ADDRESS + [429]


async def test_sigterm_of_the_producing_worker_hands_its_websocket_over_through_nginx(
    stack: Stack, standin, cookies, redis_server: RedisServer
) -> None:
    """The worker drains: its WebSocket closes with 1012 (Service Restart), the client
    reconnects through nginx (to the other worker) and resumes after its last seq; the
    run keeps generating on the draining worker, which exits 0 once it has ended."""
    tokens = [f"w{i} " for i in range(120)]  # three seconds: the drain lets it finish
    standin.script(Reply(tokens=tokens, tps=40))
    got: list[dict] = []
    async with ws_connect(ws_url(stack.url), origin=stack.url, additional_headers=cookie_header(cookies)) as ws:
        await ws.send(json.dumps({"command": "start", "message": "hello"}))
        while len([e for e in got if e["type"] == "token"]) < 5:
            got.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        run_id = next(e["run_id"] for e in got if e.get("run_id"))
        producer = await producing_worker(stack, redis_server, run_id)
        producer.terminate()
        with pytest.raises(ConnectionClosed):
            while True:
                got.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
    assert ws.close_code == 1012

    last = got[-1]["seq"]
    # As the page does: reconnect, with a short pause between tries. nginx retries a
    # refused handshake on the other worker, unless it still rests after an earlier
    # failure (a worker killed by an earlier test: fail_timeout).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            async with ws_connect(
                ws_url(stack.url), origin=stack.url, additional_headers=cookie_header(cookies)
            ) as ws:
                await ws.send(json.dumps({"command": "subscribe", "run_id": run_id, "after": last}))
                await ws_events(ws, got)
                break
        except (InvalidStatus, ConnectionClosed, OSError):
            await asyncio.sleep(0.2)
    assert got[-1]["type"] == "completed"
    run_events = [e for e in got if "seq" in e and e.get("run_id") == run_id]
    assert_exact_sequence(run_events)  # nothing lost, nothing twice
    assert ws_text(run_events) == "".join(tokens)
    assert await asyncio.to_thread(producer.wait, DRAIN_SECONDS + 10) == 0
    reply = await Message.objects.aget(pk=run_id)
    assert reply.status == "completed" and reply.content == "".join(tokens)


async def test_a_post_that_a_draining_worker_refuses_goes_back_to_its_client_to_retry(
    stack: Stack, standin, cookies
) -> None:
    """nginx sends no POST a second time once a worker has received it (that worker may
    have acted on it): a draining worker's 503 reaches the client, with Retry-After, and
    did nothing; the client's retry after it lands on a worker that serves. GETs are
    retried by nginx itself."""
    standin.script(Reply(tokens=[f"w{i} " for i in range(120)], tps=40))  # keeps it draining
    one, two = stack.workers
    await start_run(one.url, cookies)
    one.terminate()
    deadline = time.monotonic() + 5
    while http_status(one.port) != 503:
        assert time.monotonic() < deadline, "worker one did not start draining"
        await asyncio.sleep(0.05)

    statuses: list[int] = []
    before = await Thread.objects.acount()
    async with client(stack.url, cookies) as http:
        # POSTs first: a GET that met the draining worker would rest it (fail_timeout).
        for _ in range(6):  # round robin: some land on the draining worker
            response = await http.post("/api/threads", json={})
            statuses.append(response.status_code)
            if response.status_code == 503:
                assert response.headers["Retry-After"] == "1"
                assert response.json() == {"error": "This server is restarting; retry."}
                await asyncio.sleep(1)  # as the page does: retry after Retry-After
                response = await http.post("/api/threads", json={})
                for _ in range(5):
                    if response.status_code != 503:
                        break
                    await asyncio.sleep(1)
                    response = await http.post("/api/threads", json={})
                assert response.status_code == 201
        after = await Thread.objects.acount()
        # GETs: retried on the other worker by nginx itself.
        assert [(await http.get("/healthz")).status_code for _ in range(4)] == [200] * 4
    assert 503 in statuses and 201 in statuses
    assert after - before == 6  # one thread per POST answered 201: none twice, none lost
    assert await asyncio.to_thread(one.wait, DRAIN_SECONDS + 10) == 0


def test_the_chat_page_through_nginx_keeps_a_reply_whole_when_its_worker_restarts(
    stack: Stack, standin, redis_server: RedisServer
) -> None:
    """A real browser on the chat page, through nginx: the worker that holds its WebSocket
    and generates its reply gets SIGTERM mid-reply. The page reconnects through nginx to
    the other worker and shows exactly the model's text, once."""
    from playwright.sync_api import expect, sync_playwright

    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

    tokens = [f"w{i} " for i in range(160)]  # four seconds: the drain lets it finish
    standin.script(Reply(tokens=tokens, tps=40))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            assert page.goto(f"{stack.url}/").status == 200
            expect(page.locator("#status")).to_have_attribute("data-state", "open")
            box = page.get_by_label("Message", exact=True)
            box.fill("Count, please")
            box.press("Enter")
            reply = page.locator("li.message.assistant").last
            expect(reply).to_have_attribute("data-run-id", re.compile(r"^[0-9a-f-]{36}$"))
            page.wait_for_function(
                "(item) => item.querySelector('.body').innerText.length > 20", arg=reply.element_handle()
            )
            run_id = reply.get_attribute("data-run-id")
            raw = redis.Redis.from_url(redis_server.url).hget("chat:active:runs", run_id)
            assert raw is not None, "the run ended before the restart"
            pid = int(json.loads(raw)["worker"].split(":")[-2])
            worker = next(w for w in stack.workers if w.pid == pid)
            worker.terminate()
            expect(reply).to_have_attribute("data-status", "completed")
            shown = reply.locator(".body").inner_text()
            expect(page.locator("#status")).to_have_attribute("data-state", "open")
        finally:
            browser.close()
    assert " ".join(shown.split()) == "".join(tokens).strip()
    assert worker.wait(DRAIN_SECONDS + 10) == 0
    assert len(standin.requests) == 1  # one model call: nothing was started twice


async def test_a_redis_restart_mid_run_kills_no_process_and_strands_no_run(
    stack: Stack, standin, cookies, redis_server: RedisServer
) -> None:
    standin.script(Reply(tokens=[f"w{i} " for i in range(120)], tps=40), Reply(text=TEXT, tps=150))
    one, two = stack.workers
    run_id = await start_run(one.url, cookies)
    await asyncio.to_thread(standin.wait_for, lambda reqs: reqs and reqs[0].tokens_sent >= 10)

    redis_server.stop()
    await asyncio.sleep(1.0)
    redis_server.start()  # empty: a Redis without persistence comes back with nothing

    # The run ends (its producer retries appends for a while), with a status that says how.
    reply = await wait_for_status(run_id, WRITE_RETRY_SECONDS + 10)
    assert reply.status in TERMINAL, "the run was left streaming"
    if reply.status != "completed":
        assert reply.error
    assert all(worker.alive() for worker in stack.workers)
    assert not stack.dead()

    # A run started now, through nginx, is whole on the worker that did not produce it.
    run_id = await start_run(stack.url, cookies)
    follower = two if await producing_worker(stack, redis_server, run_id) is one else one
    got = await read_sse(follower.url, cookies, run_id)
    assert_exact_sequence(got)
    assert got[-1]["type"] == "completed" and text_of(got) == TEXT
    assert (await Message.objects.aget(pk=run_id)).content == TEXT


async def test_after_a_redis_restart_the_event_log_fails_no_call_and_loses_no_listener(
    redis_server: RedisServer,
) -> None:
    """A pooled connection that the restart closed reconnects instead of failing a call,
    and a subscription attempted during the outage does not count as made: the next
    listener for that run subscribes for real and gets its events live."""
    log = RedisEventLog(redis_server.url, retention=60, max_events=1000)
    try:
        redis_server.stop()
        with pytest.raises(redis.ConnectionError):
            async with log.listen("run-x"):
                pass
        redis_server.start()
        async with log.listen("run-x") as inbox:
            event = {"run_id": "run-x", "seq": 1, "type": "delta", "text": "a", "tokens": 1}
            await log.append("run-x", [event])  # type: ignore[list-item]
            assert await inbox.get(wait=2) == [event]
        await log.heartbeat("worker", 5)  # pooled connections, for a restart to close
        redis_server.stop()
        redis_server.start()
        await log.heartbeat("worker", 5)
        assert await log.meta("run-x") is None
    finally:
        await log.close()


def test_the_stack_command_serves_and_exits_cleanly_on_sigterm(
    django_db_blocker, standin_server, redis_server: RedisServer
) -> None:
    """`python -m deploy` (scripts/stack.sh): up, serving through nginx, and on
    SIGTERM every child stops and the command exits 0."""
    with django_db_blocker.unblock():
        env = stack_env(standin_server, redis_server)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "deploy", "--workers", "1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        output = ""
        assert process.stdout is not None
        for line in process.stdout:
            output += line
            if "serving on" in line:
                break
        assert http_status(port) == 200, output
        children = [int(pid) for pid in subprocess.run(
            ["pgrep", "-P", str(process.pid)], capture_output=True, text=True, check=False
        ).stdout.split()]
        assert len(children) == 2, output  # one worker and nginx
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(DRAIN_SECONDS + 15) == 0, output + process.stdout.read()
        for pid in children:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0  # nginx is gone
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
