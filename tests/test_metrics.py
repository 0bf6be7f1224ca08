"""Metrics and logs: a run counts its start, tokens, end and deliveries; refusals count by
reason; reaped runs and event-log failures are counted; a worker serves its metrics on an
internal port of its own (never the site's); records about a run carry its ids, and
`LOG_FORMAT=json` writes them as JSON lines."""

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from channels.testing import HttpCommunicator, WebsocketCommunicator
from django.test import AsyncClient
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from chatproject.asgi import application
from streaming import drain, events, selectors
from streaming.logs import LogUnavailable, event_log
from streaming.logs.memory import MemoryEventLog
from streaming.manager import run_reap
from streaming.models import Message, Thread, User
from streaming.structured_logs import JsonFormatter
from tests.conftest import ROOT, ended_reply, free_port, guest_client, guest_session
from tests.seed_clients import pieces, sse_ids
from tests.sse import parse_sse
from tests.standin import Reply
from tests.test_errorpages import failing, member, pool_exhausted

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("run_cleanup")]

SLOW = [f"w{i} " for i in range(60)]
ORIGIN = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]


class Scrape:
    """One scrape of Prometheus's text format: `scrape(name, **labels)` is a sample's value
    (0 for a sample not shown)."""

    def __init__(self, text: str) -> None:
        self.samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def __call__(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)


def scrape() -> Scrape:
    """This process's metrics, as a worker's metrics port serves them."""
    return Scrape(generate_latest().decode())


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Until `check()` (a run's end is counted just after its terminal event is logged)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the metric never got there"
        await asyncio.sleep(0.02)


async def guest() -> AsyncClient:
    """An in-process client holding a guest session."""
    return await guest_client()


async def post(client: AsyncClient, url: str, body: object) -> tuple[int, dict]:
    response = await client.post(url, data=json.dumps(body), content_type="application/json")
    return response.status_code, json.loads(response.content)


async def new_thread(client: AsyncClient) -> str:
    status, thread = await post(client, "/api/threads", {})
    assert status == 201
    return thread["id"]


async def test_a_run_over_sse_counts_its_start_tokens_end_and_deliveries(standin, backend) -> None:
    standin.script(Reply(tokens=SLOW, tps=200))
    before = scrape()
    client = await guest()
    thread_id = await new_thread(client)
    status, started = await post(client, f"/api/threads/{thread_id}/messages", {"message": "hi"})
    assert status == 201
    response = await client.get(f"/api/runs/{started['run_id']}/events")
    got = [event for _, event in sse_ids(await pieces(response))]
    assert got[-1]["type"] == "completed"
    reply = await ended_reply(started["run_id"])
    assert reply.token_count == len(SLOW)

    ended = before("chat_runs_ended_total", status="completed") + 1
    await eventually(lambda: scrape()("chat_runs_ended_total", status="completed") == ended)
    after = scrape()
    assert after("chat_runs_started_total") == before("chat_runs_started_total") + 1
    assert after("chat_tokens_generated_total") - before("chat_tokens_generated_total") == reply.token_count
    for status in ("stopped", "failed", "interrupted"):
        assert after("chat_runs_ended_total", status=status) == before("chat_runs_ended_total", status=status)
    sent = after("chat_events_delivered_total", transport="sse") - before("chat_events_delivered_total", transport="sse")
    assert sent == len(got)
    assert after("chat_events_delivered_total", transport="websocket") == before(
        "chat_events_delivered_total", transport="websocket"
    )
    ttft = after("chat_time_to_first_token_seconds_count") - before("chat_time_to_first_token_seconds_count")
    assert ttft == 1
    # The deltas made while the stream was open were timed (the model took ~0.3 s).
    lagged = after("chat_delivery_lag_seconds_count") - before("chat_delivery_lag_seconds_count")
    assert 0 < lagged <= len([e for e in got if e["type"] == "delta"])
    await eventually(lambda: scrape()("chat_live_runs") == before("chat_live_runs"))


async def test_a_websocket_counts_the_run_events_it_sends(settings) -> None:
    settings.OPENAI_API_KEY = ""
    before = scrape()
    ws = WebsocketCommunicator(application, "/ws/stream?wire=native", headers=ORIGIN)
    assert (await ws.connect(timeout=5))[0]
    await ws.send_json_to({"command": "start", "message": "hi"})
    got = []
    while not got or got[-1].get("type") != "completed":
        got.append(await ws.receive_json_from(timeout=10))
    await ws.disconnect(timeout=5)
    sent = [e for e in got if "seq" in e]
    delivered = scrape()("chat_events_delivered_total", transport="websocket")
    assert delivered - before("chat_events_delivered_total", transport="websocket") == len(sent)


async def test_chatkit_counts_the_run_events_it_streams(settings) -> None:
    settings.OPENAI_API_KEY = ""
    user = await User.objects.acreate(username=f"k-{uuid.uuid4().hex[:8]}")
    client = AsyncClient()
    await client.aforce_login(user)
    before = scrape()
    body = {"type": "threads.create", "params": {"input": {
        "content": [{"type": "input_text", "text": "hi"}], "attachments": [], "inference_options": {},
    }}}
    response = await client.post("/chatkit", data=json.dumps(body), content_type="application/json")
    await pieces(response)
    reply = await Message.objects.aget(thread__owner=user, role="assistant")
    logged = await event_log().read(str(reply.pk), 0)
    assert logged[-1]["type"] == "completed"
    delivered = scrape()("chat_events_delivered_total", transport="chatkit")
    assert delivered - before("chat_events_delivered_total", transport="chatkit") == len(logged)


async def test_polls_count_the_events_they_return(settings) -> None:
    settings.OPENAI_API_KEY = ""
    client = await guest()
    thread_id = await new_thread(client)
    _, started = await post(client, f"/api/threads/{thread_id}/messages", {"message": "hi"})
    await ended_reply(started["run_id"])
    before = scrape()
    response = await client.get(f"/api/runs/{started['run_id']}/poll?after=0")
    polled = json.loads(response.content)
    assert polled["complete"] and polled["events"]
    delivered = scrape()("chat_events_delivered_total", transport="poll")
    assert delivered - before("chat_events_delivered_total", transport="poll") == len(polled["events"])


async def test_messages_and_threads_over_a_limit_count_as_refused_rate_limited(settings) -> None:
    settings.OPENAI_API_KEY = ""
    settings.CHAT_MESSAGES_PER_MINUTE = 1
    client = await guest()
    url = f"/api/threads/{await new_thread(client)}/messages"
    assert (await post(client, url, {"message": "one"}))[0] == 201
    before = scrape()
    assert (await post(client, url, {"message": "two"}))[0] == 429
    settings.CHAT_THREADS_PER_HOUR = 1
    assert (await post(client, "/api/threads", {}))[0] == 429
    after = scrape()
    assert after("chat_requests_refused_total", reason="rate_limited") == before(
        "chat_requests_refused_total", reason="rate_limited"
    ) + 2
    assert after("chat_runs_started_total") == before("chat_runs_started_total")


async def test_bad_requests_count_as_refused_bad_request() -> None:
    client = await guest()
    before = scrape()
    thread_id = await new_thread(client)
    assert (await post(client, f"/api/threads/{thread_id}/messages", {"message": ""}))[0] == 400
    assert (await post(client, "/api/stream/message", {"message": 5}))[0] == 400
    refused = scrape()("chat_requests_refused_total", reason="bad_request")
    assert refused == before("chat_requests_refused_total", reason="bad_request") + 2


async def test_a_draining_worker_counts_what_it_turns_away(monkeypatch) -> None:
    async def app(scope, receive, send) -> None:
        raise AssertionError("a draining worker passed a request on")

    monkeypatch.setattr(drain._drain, "draining", True)
    before = scrape()
    answer = await HttpCommunicator(drain.DrainGate(app), "GET", "/api/threads").get_response()
    assert answer["status"] == 503
    ws = WebsocketCommunicator(drain.DrainGate(app), "/ws/stream")
    connected, _ = await ws.connect()
    assert not connected
    refused = scrape()("chat_requests_refused_total", reason="draining")
    assert refused == before("chat_requests_refused_total", reason="draining") + 2


def test_no_free_database_connection_counts_as_refused_no_capacity(monkeypatch) -> None:
    monkeypatch.setattr(selectors, "thread_search", failing(pool_exhausted()))
    before = scrape()
    assert member().get("/api/threads").status_code == 503
    refused = scrape()("chat_requests_refused_total", reason="no_capacity")
    assert refused == before("chat_requests_refused_total", reason="no_capacity") + 1


async def make_reply() -> tuple[str, str]:
    """A `streaming` reply in a new thread: (its run id, the thread id)."""
    user = await User.objects.acreate(username=f"m-{uuid.uuid4().hex[:8]}")
    thread = await Thread.objects.acreate(owner=user)
    reply = await Message.objects.acreate(thread=thread, role="assistant", status="streaming")
    return str(reply.pk), str(thread.pk)


async def test_a_reaped_run_counts_as_reaped_and_ended_interrupted(settings) -> None:
    settings.REDIS_URL = ""
    run_id, thread_id = await make_reply()
    log = event_log()
    await log.register(run_id, {"worker": "gone:1:dead", "thread": thread_id})
    await log.append(run_id, [
        events.started(run_id, 1, thread_id=thread_id, model="m"),
        events.delta(run_id, 2, text="partial", tokens=3, token_count=3),
    ])
    before = scrape()
    await run_reap(run_id, log=log, registry=log, who="reaper:test")
    after = scrape()
    assert after("chat_runs_reaped_total") == before("chat_runs_reaped_total") + 1
    assert after("chat_runs_ended_total", status="interrupted") == before(
        "chat_runs_ended_total", status="interrupted"
    ) + 1


class UnreachableLog(MemoryEventLog):
    """The in-process log, except that it cannot take a reply's text: every append of a
    delta fails as an unreachable Redis's would."""

    def append(self, run_id, events, *, final=False, sealed_by=""):
        if any(event["type"] == "delta" for event in events):
            failed = asyncio.get_running_loop().create_future()
            failed.set_exception(LogUnavailable("connection refused"))
            return failed
        return super().append(run_id, events, final=final, sealed_by=sealed_by)


async def test_appends_the_log_does_not_take_are_counted_and_logged_with_the_runs_ids(
    standin, settings, caplog
) -> None:
    settings.STREAM_LOG_BACKEND = "tests.test_metrics.UnreachableLog"
    standin.script(Reply(tokens=SLOW, tps=200))
    before = scrape()
    client = await guest()
    thread_id = await new_thread(client)
    with caplog.at_level(logging.ERROR, logger="streaming.producer"):
        _, started = await post(client, f"/api/threads/{thread_id}/messages", {"message": "hi"})
        reply = await ended_reply(started["run_id"])
    assert reply.status == "failed" and "event log is unreachable" in reply.error
    await eventually(
        lambda: scrape()("chat_runs_ended_total", status="failed")
        == before("chat_runs_ended_total", status="failed") + 1
    )
    assert scrape()("chat_event_log_errors_total") >= before("chat_event_log_errors_total") + 1

    # The record says which run and thread, as fields; as JSON, a line that parses.
    [record] = [r for r in caplog.records if "could not append to the event log" in r.getMessage()]
    assert (record.run_id, record.thread_id) == (started["run_id"], thread_id)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["run_id"] == started["run_id"] and parsed["thread_id"] == thread_id
    assert parsed["level"] == "ERROR" and parsed["logger"] == "streaming.producer"
    assert parsed["message"] == record.getMessage()


def django_process(code: str, **env: str) -> subprocess.CompletedProcess:
    """`code` run in a new process once Django is set up (its logging configured)."""
    keep = {"PATH", "HOME", "LANG", "VIRTUAL_ENV", "PYTHONPATH"}
    environment = {k: v for k, v in os.environ.items() if k in keep} | env
    environment["DJANGO_SETTINGS_MODULE"] = "chatproject.settings"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True,
        timeout=60,
    )


RUN_RECORD = """
import django
django.setup()
import logging
from streaming.structured_logs import run_fields
logging.getLogger("streaming.producer").warning(
    "run %s: its end is not logged yet; retrying", "r-1", extra=run_fields("r-1", "t-1")
)
"""


def test_log_format_json_writes_each_record_as_one_json_line_with_the_runs_ids() -> None:
    result = django_process(RUN_RECORD, LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stderr.splitlines() if "r-1" in line]
    record = json.loads(line)
    assert record["message"] == "run r-1: its end is not logged yet; retrying"
    assert (record["run_id"], record["thread_id"]) == ("r-1", "t-1")
    assert record["level"] == "WARNING" and record["logger"] == "streaming.producer"
    assert record["time"].endswith("+00:00")

    plain = django_process(RUN_RECORD)  # the default: the lines as they always were
    assert " WARNING streaming.producer: run r-1: its end is not logged yet; retrying" in plain.stderr
    refused = django_process(RUN_RECORD, LOG_FORMAT="yaml")
    assert refused.returncode != 0 and "LOG_FORMAT must be plain or json" in refused.stderr


def test_a_worker_serves_its_metrics_on_an_internal_port_of_its_own(daphne_server) -> None:
    port = free_port()
    server = daphne_server(METRICS_PORT=str(port), LOG_FORMAT="json")
    client = guest_session(server.url)
    thread = client.post("/api/threads", json={}).json()
    started = client.post(f"/api/threads/{thread['id']}/messages", json={"message": "hi"}).json()
    got = parse_sse(client.get(f"/api/runs/{started['run_id']}/events").text)
    assert got[-1]["data"]["type"] == "completed"
    metrics = client.get(f"/api/threads/{thread['id']}/messages").json()["messages"][-1]["metrics"]

    url = f"http://127.0.0.1:{port}/metrics"
    deadline = time.monotonic() + 5
    while (scraped := Scrape(httpx.get(url).text))("chat_runs_ended_total", status="completed") < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert scraped("chat_runs_started_total") == 1
    assert scraped("chat_runs_ended_total", status="completed") == 1
    assert scraped("chat_tokens_generated_total") == metrics["token_count"] > 0
    assert scraped("chat_events_delivered_total", transport="sse") == len(got)
    assert scraped("chat_time_to_first_token_seconds_count") == 1
    assert scraped("chat_live_runs") == 0
    assert scraped("process_cpu_seconds_total") > 0  # the worker process's own, too
    # Not a route of the site: nginx, which proxies the site's port, cannot reach it.
    assert client.get("/metrics").status_code == 404
    client.close()

    # The worker's log records (daphne's own included) are JSON lines.
    logged = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
    assert any(r["logger"] == "daphne.server" and "Listening" in r["message"] for r in logged)


def test_a_metrics_port_already_taken_stops_the_worker(daphne_server) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match="METRICS_PORT: cannot serve metrics on 127.0.0.1"):
            daphne_server(METRICS_PORT=str(port))
