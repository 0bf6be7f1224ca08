"""The native API (docs/api.md): threads, messages, runs over SSE and polling, stop, other
users' ids, limits and the JSON CSRF rule. One live daphne server checks SSE on the network;
the rest runs in-process through `django.test.AsyncClient`."""

import asyncio
import itertools
import json
import time
import uuid
from typing import Any

import pytest
from django.test import AsyncClient

from streaming.models import Message, Thread, User
from tests.conftest import free_port, guest_client, guest_session
from tests.seed_clients import pieces, sse_ids, whole_events
from tests.standin import Reply, split_tokens
from tests.test_seed_api import BAD_FIELDS, NOT_AN_OBJECT

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("run_cleanup")]

TEXT = "Héllo — 世界 🎉! " + " ".join(f"word{i}" for i in range(40)) + "\n\n```py\nprint('ok')\n```"
TOKENS = split_tokens(TEXT)
SLOW = [f"w{i} " for i in range(400)]
BAD_AFTER = "'after' (or Last-Event-ID) must be a sequence number from 0 to 9007199254740991."


async def call(client: AsyncClient, method: str, url: str, body: Any = None, **headers: str) -> tuple[int, Any]:
    """A JSON request; the status and the JSON answer (None for an empty one)."""
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None:
        kwargs |= {"data": body if isinstance(body, bytes) else json.dumps(body), "content_type": "application/json"}
    response = await getattr(client, method)(url, **kwargs)
    return response.status_code, json.loads(response.content) if response.content else None


async def guest() -> AsyncClient:
    """An in-process client holding a guest session."""
    return await guest_client()


async def start(client: AsyncClient, message: str = "hi", **options: Any) -> dict:
    """A new thread and a message in it: the 201 answer."""
    status, thread = await call(client, "post", "/api/threads", {})
    assert status == 201
    status, started = await call(client, "post", f"/api/threads/{thread['id']}/messages", {"message": message, **options})
    assert status == 201, started
    return started


async def sse(client: AsyncClient, run_id: str, *, after: Any = None, last_event_id: Any = None) -> list[dict]:
    """The run's SSE, checked: `retry:` first, `id:` equal to each event's seq."""
    url = f"/api/runs/{run_id}/events" + ("" if after is None else f"?after={after}")
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    response = await client.get(url, headers=headers)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream" and response["Cache-Control"] == "no-cache"
    chunks = await pieces(response)
    assert chunks[0] == b"retry: 2000\n\n"
    got = sse_ids(chunks)
    assert all(seq == event["seq"] for seq, event in got)
    if got and got[-1][1]["type"] in ("completed", "stopped", "failed", "interrupted"):
        assert b'"seq":%d,' % got[-1][0] in chunks[-1]  # nothing is sent after the terminal event
    return [event for _, event in got]


def text_of(got: list[dict]) -> str:
    return "".join(e["text"] for e in got if e["type"] == "delta")


def assert_whole_run(got: list[dict], terminal: str = "completed") -> None:
    assert [e["seq"] for e in got] == list(range(1, len(got) + 1))
    assert got[0]["type"] == "started" and got[-1]["type"] == terminal
    assert [e["type"] for e in got].count(terminal) == 1


async def wait_logged(client: AsyncClient, run_id: str, seq: int) -> None:
    while True:
        _, polled = await call(client, "get", f"/api/runs/{run_id}/poll?after={seq - 1}&wait=5")
        if polled["events"]:
            return


# On a live server.


@pytest.fixture
def live(daphne_server, standin):
    server = daphne_server(
        OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=standin.base_url, AGENT_MODEL="gpt-test",
        AGENT_API="responses",
    )
    client = guest_session(server.url)
    yield client
    client.close()


def read_live(
    client, run_id: str, *, until_seq: int | None = None, after: int | None = None,
    last_event_id: int | None = None,
) -> tuple[list[bytes], list[dict]]:
    """The run's SSE over the network, read by `iter_bytes`; left once `until_seq` is seen."""
    chunks, got = [], []
    url = f"/api/runs/{run_id}/events" + ("" if after is None else f"?after={after}")
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            got += [event for _, event in sse_ids([chunk])]
            if until_seq is not None and got and got[-1]["seq"] >= until_seq:
                break
    return chunks, got


def test_native_sse_on_a_live_server_resumes_after_a_dropped_connection(live, standin) -> None:
    standin.script(Reply(tokens=SLOW[:80], tps=100))
    thread = live.post("/api/threads", json={"title": "Live"}).json()
    started = live.post(f"/api/threads/{thread['id']}/messages", json={"message": "hi", "flush_ms": 10})
    assert started.status_code == 201
    run_id = started.json()["run_id"]

    chunks, head = read_live(live, run_id, until_seq=5)  # the connection drops here
    assert chunks[0].startswith(b"retry: 2000\n\n")
    last = head[-1]["seq"]
    tail_chunks, tail = read_live(live, run_id, last_event_id=last)
    for chunk in chunks + tail_chunks:
        whole_events(chunk)
    got = head + tail
    assert_whole_run(got)
    assert text_of(got) == "".join(SLOW[:80])
    assert Message.objects.get(pk=run_id).content == text_of(got)
    # The same tail by `?after=`, once the run has ended; and the poll answer agrees.
    assert read_live(live, run_id, after=last)[1] == tail
    polled = live.get(f"/api/runs/{run_id}/poll?after=0").json()
    assert polled == {"events": got, "complete": True, "status": "completed"}
    messages = live.get(f"/api/threads/{thread['id']}/messages").json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["content"] == text_of(got) and messages[1]["status"] == "completed"


# Threads.


async def test_threads_crud() -> None:
    client = await guest()
    assert await call(client, "get", "/api/threads") == (200, {"threads": [], "next_page": None})
    status, plans = await call(client, "post", "/api/threads", {"title": "  Plans  "})
    assert status == 201 and plans["title"] == "Plans"
    assert set(plans) == {"id", "title", "external_id", "created_at", "updated_at"}
    status, untitled = await call(client, "post", "/api/threads", {})
    assert status == 201 and untitled["title"] == f"Thread {untitled['id'][:8]}"
    for bad in ({"title": 5}, {"title": "x" * 201}, {"title": None}, b"{nope", b"[]"):
        status, body = await call(client, "post", "/api/threads", bad)
        assert status == 400 and set(body) == {"error"}
    _, listed = await call(client, "get", "/api/threads")
    assert [t["id"] for t in listed["threads"]] == [untitled["id"], plans["id"]]  # newest first

    url = f"/api/threads/{plans['id']}"
    assert await call(client, "get", url) == (200, plans)
    for bad in ({}, {"title": ""}, {"title": "   "}, {"title": 1}):
        status, body = await call(client, "patch", url, bad)
        assert status == 400 and body == {"error": "'title' must be a non-empty string of at most 200 characters."}
    status, renamed = await call(client, "patch", url, {"title": "Holiday plans"})
    assert status == 200 and renamed["title"] == "Holiday plans" and renamed["id"] == plans["id"]
    _, listed = await call(client, "get", "/api/threads")
    assert [t["id"] for t in listed["threads"]] == [plans["id"], untitled["id"]]  # most recently active first
    assert (await client.put(url, data="{}", content_type="application/json")).status_code == 405

    assert (await client.delete(url, content_type="application/json")).status_code == 204
    assert await call(client, "get", url) == (404, {"error": "No such conversation."})
    assert await call(client, "get", f"{url}/messages") == (404, {"error": "No such conversation."})
    _, listed = await call(client, "get", "/api/threads")
    assert [t["id"] for t in listed["threads"]] == [untitled["id"]]


async def test_a_message_starts_a_run_whose_reply_is_stored_with_status_and_metrics(standin) -> None:
    standin.script(Reply(text=TEXT, tps=300), Reply(text="Second answer."))
    client = await guest()
    started = await start(client, "First question")
    run_id = started["run_id"]
    assert set(started) == {"run_id", "message_id", "user_message_id", "thread_id", "events_url"}
    assert started["message_id"] == run_id and started["events_url"] == f"/api/runs/{run_id}/events"
    got = await sse(client, run_id)
    assert_whole_run(got)
    assert got[0]["thread_id"] == started["thread_id"] and got[0]["model"] == "gpt-test"
    assert text_of(got) == TEXT
    deltas = [e for e in got if e["type"] == "delta"]
    assert [e["token_count"] for e in deltas] == list(itertools.accumulate(e["tokens"] for e in deltas))
    assert set(got[-1]["metrics"]) == {"ttft_seconds", "token_count", "duration_seconds", "tokens_per_second"}

    status, listed = await call(client, "get", f"/api/threads/{started['thread_id']}/messages")
    assert status == 200
    question, reply = listed["messages"]
    assert question == {
        "id": started["user_message_id"], "role": "user", "content": "First question",
        "status": "completed", "created_at": question["created_at"], "parent_id": None,
        "version": 1, "versions": 1, "version_ids": [started["user_message_id"]],
    }
    assert reply["id"] == reply["run_id"] == run_id and reply["role"] == "assistant"
    assert reply["parent_id"] == question["id"] and reply["version_ids"] == [run_id]
    assert reply["content"] == TEXT and reply["status"] == "completed"
    assert reply["model"] == "gpt-test" and reply["error"] == ""
    metrics = reply["metrics"]
    assert metrics["token_count"] == len(TOKENS) == got[-1]["metrics"]["token_count"]
    assert metrics["ttft_seconds"] is not None and metrics["duration_seconds"] > 0
    assert metrics == got[-1]["metrics"]  # one vocabulary: the event's metrics are the stored ones
    assert metrics["tokens_per_second"] > 0
    _, thread = await call(client, "get", f"/api/threads/{started['thread_id']}")
    assert thread["title"] == "First question"  # titled after the first message

    # The next message in the thread reaches the model with the earlier turns.
    status, second = await call(
        client, "post", f"/api/threads/{started['thread_id']}/messages", {"message": "Second question"}
    )
    assert status == 201 and text_of(await sse(client, second["run_id"])) == "Second answer."
    _, listed = await call(client, "get", "/api/threads")
    assert listed["threads"][0]["id"] == started["thread_id"]
    assert standin.requests[-1].json["input"] == [
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": TEXT},
        {"role": "user", "content": "Second question"},
    ]


async def test_bad_messages_get_400_and_save_nothing() -> None:
    client = await guest()
    _, thread = await call(client, "post", "/api/threads", {})
    url = f"/api/threads/{thread['id']}/messages"
    for raw, expected in NOT_AN_OBJECT:
        status, body = await call(client, "post", url, raw)
        assert status == 400 and expected in body["error"] and set(body) == {"error"}
    for fields, expected in [*BAD_FIELDS, ({"message": "hi", "cancel_on_disconnect": "yes"},
                                           "'cancel_on_disconnect' must be true or false.")]:  # fmt: skip
        assert await call(client, "post", url, fields) == (400, {"error": expected}), fields
    assert await Message.objects.acount() == 0


# Runs: SSE resume, stop, polling.


async def test_sse_resumes_by_last_event_id_or_after_with_no_gaps_or_duplicates(standin) -> None:
    standin.script(Reply(tokens=SLOW[:60], tps=120))
    client = await guest()
    run_id = (await start(client, flush_ms=5))["run_id"]
    await wait_logged(client, run_id, 6)
    # Resuming while the run is live: after the header's seq, which wins over `?after=`.
    full, by_header, by_after = await asyncio.gather(
        sse(client, run_id), sse(client, run_id, last_event_id=3, after=5), sse(client, run_id, after=5)
    )
    assert_whole_run(full)
    assert text_of(full) == "".join(SLOW[:60]) == (await Message.objects.aget(pk=run_id)).content
    assert by_header == full[3:] and by_after == full[5:]
    # And after the end, at every cut.
    for cut in range(len(full) + 1):
        assert await sse(client, run_id, last_event_id=cut) == full[cut:]
        assert await sse(client, run_id, after=cut) == full[cut:]
    for bad in ("-1", "x", "1.5", "%C2%B2"):
        assert await call(client, "get", f"/api/runs/{run_id}/events?after={bad}") == (400, {"error": BAD_AFTER})
    status, _ = await call(client, "get", f"/api/runs/{run_id}/events", **{"Last-Event-ID": "abc"})
    assert status == 400


async def test_stop_ends_the_run_stopped_and_closes_the_model_stream(standin) -> None:
    standin.script(Reply(tokens=SLOW, tps=50))
    client = await guest()
    started = await start(client)
    run_id = started["run_id"]
    follower = asyncio.create_task(sse(client, run_id))
    await asyncio.to_thread(standin.wait_for, lambda reqs: reqs and reqs[0].tokens_sent >= 5)
    _, listed = await call(client, "get", f"/api/threads/{started['thread_id']}/messages")
    assert listed["messages"][1]["status"] == "streaming"
    status, body = await call(client, "post", f"/api/runs/{run_id}/stop", {})
    assert (status, body) == (202, {"run_id": run_id, "stopping": True})
    got = await follower
    assert_whole_run(got, "stopped")
    record = await asyncio.to_thread(standin.wait_closed_early, 0, 5)
    assert record.stream_closed_early and record.tokens_sent < len(SLOW)
    reply = await Message.objects.aget(pk=run_id)
    assert reply.status == "stopped" and reply.content == text_of(got) and reply.content
    assert await call(client, "post", f"/api/runs/{run_id}/stop", {}) == (202, {"run_id": run_id, "stopping": True})
    assert (await Message.objects.aget(pk=run_id)).status == "stopped"


async def test_deleting_a_conversation_stops_its_run_at_the_model_and_frees_its_slot(standin, settings) -> None:
    settings.CHAT_MAX_CONCURRENT_RUNS = 1
    standin.script(Reply(tokens=SLOW, tps=50), Reply(tokens=["fine"]))
    client = await guest()
    started = await start(client)
    follower = asyncio.create_task(sse(client, started["run_id"]))
    await asyncio.to_thread(standin.wait_for, lambda reqs: reqs and reqs[0].tokens_sent >= 5)
    assert await call(client, "delete", f"/api/threads/{started['thread_id']}") == (204, None)
    record = await asyncio.to_thread(standin.wait_closed_early, 0, 5)
    assert record.stream_closed_early and record.tokens_sent < len(SLOW)
    assert (await follower)[-1]["type"] == "stopped"
    assert await Message.objects.acount() == 0
    second = await start(client, "again")
    assert (await sse(client, second["run_id"]))[-1]["type"] == "completed"


async def test_poll_returns_events_after_a_seq_and_long_polls(standin) -> None:
    standin.script(Reply(tokens=SLOW[:10], first_token_delay=0.6))
    client = await guest()
    run_id = (await start(client))["run_id"]
    url = f"/api/runs/{run_id}/poll"
    status, now = await call(client, "get", f"{url}?after=1")
    assert status == 200 and now == {"events": [], "complete": False, "status": "streaming"}
    began = time.monotonic()
    status, waited = await call(client, "get", f"{url}?after=1&wait=2")
    elapsed = time.monotonic() - began
    assert status == 200 and 0.3 < elapsed < 1.9
    assert waited["events"] and waited["events"][0]["seq"] == 2 and waited["complete"] is False

    full = await sse(client, run_id)
    assert await call(client, "get", f"{url}?after=0") == (200, {"events": full, "complete": True, "status": "completed"})
    n = len(full)
    assert await call(client, "get", f"{url}?after={n - 2}") == (200, {"events": full[-2:], "complete": True, "status": "completed"})
    assert await call(client, "get", f"{url}?after={n}&wait=1") == (200, {"events": [], "complete": True, "status": "completed"})
    for bad in ("after=x", "after=-1", "wait=x", "wait=-1", "wait=26", "wait=nan"):
        status, body = await call(client, "get", f"{url}?{bad}")
        assert status == 400 and set(body) == {"error"}, bad


async def test_an_unreachable_model_provider_ends_the_run_failed_saying_so(settings) -> None:
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    client = await guest()
    started = await start(client)
    got = await sse(client, started["run_id"])
    assert_whole_run(got, "failed")
    assert got[-1]["error"] == "The model provider could not be reached." and text_of(got) == ""


async def test_a_model_failure_ends_the_run_failed_with_the_partial_text(standin) -> None:
    standin.script(Reply(text="one two three four five six seven", drop_after=3))
    client = await guest()
    started = await start(client)
    got = await sse(client, started["run_id"])
    assert_whole_run(got, "failed")
    error = "The connection to the model provider was lost before the reply was complete."
    assert got[-1]["error"] == error and text_of(got) == "one two three"
    _, listed = await call(client, "get", f"/api/threads/{started['thread_id']}/messages")
    reply = listed["messages"][1]
    assert (reply["status"], reply["content"], reply["error"]) == ("failed", "one two three", error)
    assert reply["metrics"]["token_count"] == 3
    _, polled = await call(client, "get", f"/api/runs/{started['run_id']}/poll?after=0")
    assert polled["complete"] is True and polled["status"] == "failed"


# Other users' ids.


async def staff_member() -> AsyncClient:
    """A logged-in superuser: staff read conversations in the admin, not through the chat."""
    client = AsyncClient()
    admin = await User.objects.acreate(username=f"admin-{uuid.uuid4().hex[:8]}", is_staff=True, is_superuser=True)
    await client.aforce_login(admin)
    return client


@pytest.mark.parametrize("other", ["guest", "staff"])
async def test_another_user_gets_404_on_every_route_and_never_the_text(standin, other) -> None:
    standin.script(Reply(text="Ann's secret: 42 🗝", tokens=["Ann's ", "secret: ", "42 ", "🗝"] * 40, tps=160))
    ann = await guest()
    bob = await guest() if other == "guest" else await staff_member()
    started = await start(ann, "my private question")
    run_id, thread_id = started["run_id"], started["thread_id"]
    await wait_logged(ann, run_id, 3)
    requests = [
        ("get", f"/api/threads/{thread_id}", None, "No such conversation."),
        ("patch", f"/api/threads/{thread_id}", {"title": "mine now"}, "No such conversation."),
        ("delete", f"/api/threads/{thread_id}", None, "No such conversation."),
        ("get", f"/api/threads/{thread_id}/messages", None, "No such conversation."),
        ("post", f"/api/threads/{thread_id}/messages", {"message": "let me in"}, "No such conversation."),
        ("get", f"/api/runs/{run_id}/events", None, "No such reply."),
        ("get", f"/api/runs/{run_id}/poll?after=0", None, "No such reply."),
        ("get", f"/api/runs/{run_id}/poll?after=0&wait=1", None, "No such reply."),
        ("post", f"/api/runs/{run_id}/stop", {}, "No such reply."),
    ]
    for method, url, body, error in requests:
        response = await getattr(bob, method)(
            url, **({} if body is None else {"data": json.dumps(body)}), content_type="application/json"
        )
        assert response.status_code == 404, (method, url)
        assert json.loads(response.content) == {"error": error}, (method, url)
    assert await call(bob, "get", "/api/threads") == (200, {"threads": [], "next_page": None})
    # Ann's reply was not stopped, her thread not renamed, deleted or written to.
    got = await sse(ann, run_id)
    assert got[-1]["type"] == "completed"
    reply = await Message.objects.select_related("thread").aget(pk=run_id)
    assert reply.content == text_of(got) and reply.thread.title == "my private question"
    assert await Message.objects.filter(thread_id=thread_id).acount() == 2
    # Unknown ids look the same.
    assert await call(bob, "get", "/api/runs/00000000-0000-0000-0000-000000000000/poll") == (404, {"error": "No such reply."})


# Limits.


async def test_limits_answer_429_with_a_clear_message(standin, settings) -> None:
    settings.CHAT_MAX_CONCURRENT_RUNS = 1
    standin.script(Reply(tokens=SLOW, tps=40))
    client = await guest()
    first = await start(client)
    url = f"/api/threads/{first['thread_id']}/messages"
    assert await call(client, "post", url, {"message": "another"}) == (
        429, {"error": "You already have 1 replies generating; wait for one to finish or stop it."}
    )
    assert await Message.objects.acount() == 2
    await call(client, "post", f"/api/runs/{first['run_id']}/stop", {})
    assert (await sse(client, first["run_id"]))[-1]["type"] == "stopped"

    settings.CHAT_MESSAGES_PER_MINUTE = 2  # the first message counts
    settings.OPENAI_API_KEY = ""
    status, second = await call(client, "post", url, {"message": "two"})
    assert status == 201
    assert (await sse(client, second["run_id"]))[-1]["type"] == "completed"
    assert await call(client, "post", url, {"message": "three"}) == (
        429, {"error": "You can send at most 2 messages a minute; try again shortly."}
    )
    assert await Message.objects.filter(role="user").acount() == 2


async def test_conversations_started_an_hour_are_limited_whichever_way_they_start(settings) -> None:
    settings.CHAT_THREADS_PER_HOUR = 2
    settings.OPENAI_API_KEY = ""
    client = await guest()
    assert (await call(client, "post", "/api/threads", {}))[0] == 201
    started = await client.post("/api/stream/message", data=json.dumps({"message": "hi"}), content_type="application/json")
    assert started.status_code == 200
    await pieces(started)
    refusal = {"error": "You can start at most 2 conversations an hour; try again later."}
    assert await call(client, "post", "/api/threads", {}) == (429, refusal)
    refused = await client.post("/api/stream/message", data=json.dumps({"message": "hi"}), content_type="application/json")
    assert refused.status_code == 429 and json.loads(refused.content)["error"] == refusal["error"]
    assert await Thread.objects.acount() == 2


# The JSON CSRF rule.


async def test_json_posts_need_no_csrf_token_unless_cross_site(settings) -> None:
    settings.OPENAI_API_KEY = ""
    client = AsyncClient(enforce_csrf_checks=True)
    assert (await client.get("/")).status_code == 200  # a CSRF cookie
    assert (await call(client, "post", "/api/session", {}))[0] == 200  # the page's guest
    token = client.cookies["csrftoken"].value

    # Same-site or no Origin/Referer: accepted without a token.
    for headers in ({}, {"Origin": "http://testserver"}, {"Referer": "http://testserver/t/x"}):
        status, thread = await call(client, "post", "/api/threads", {"title": "ok"}, **headers)
        assert status == 201, headers
    status, started = await call(client, "post", f"/api/threads/{thread['id']}/messages", {"message": "hi"})
    assert status == 201
    assert (await sse(client, started["run_id"]))[-1]["type"] == "completed"
    response = await client.post("/api/stream/message", data=json.dumps({"message": "hi"}), content_type="application/json")
    assert response.status_code == 200 and b'"type":"completed"' in b"".join(await pieces(response))
    assert (await call(client, "patch", f"/api/threads/{thread['id']}", {"title": "renamed"}))[0] == 200
    assert (await call(client, "post", f"/api/runs/{started['run_id']}/stop", {}))[0] == 202
    before = await Thread.objects.acount(), await Message.objects.acount()

    # Cross-site JSON, and anything not JSON, follows Django's CSRF rules: 403 without a token.
    targets = [
        ("post", "/api/threads"), ("post", f"/api/threads/{thread['id']}/messages"),
        ("post", "/api/stream/message"), ("post", "/api/stream/buffered"),
        ("patch", f"/api/threads/{thread['id']}"), ("post", f"/api/runs/{started['run_id']}/stop"),
    ]  # fmt: skip
    body = json.dumps({"message": "hi", "title": "evil"})
    for method, url in targets:
        send = getattr(client, method)
        for headers in ({"Origin": "http://evil.example"}, {"Referer": "http://evil.example/page"},
                        {"Origin": "null"}, {"Origin": "https://testserver"}, {"Origin": "http://testserver:8080"},
                        {"Origin": "http://localhost:8000"}, {"Referer": "http://127.0.0.1/t/x"}):  # fmt: skip
            response = await send(url, data=body, content_type="application/json", headers=headers)
            assert response.status_code == 403, (url, headers)
        # A valid token does not make a cross-site origin acceptable.
        response = await send(url, data=body, content_type="application/json",
                              headers={"Origin": "http://evil.example", "X-CSRFToken": token})  # fmt: skip
        assert response.status_code == 403, url
        for content_type in ("application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"):
            response = await send(url, data=body, content_type=content_type)
            assert response.status_code == 403, (url, content_type)
    response = await client.delete(f"/api/threads/{thread['id']}")  # no body, no token
    assert response.status_code == 403
    assert (await Thread.objects.acount(), await Message.objects.acount()) == before
    assert (await Thread.objects.aget(pk=thread["id"])).title == "renamed"

    # Not JSON but with the token: past CSRF (then refused as bad JSON).
    response = await client.post(
        "/api/threads", data="title=x", content_type="application/x-www-form-urlencoded",
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 400 and "not valid JSON" in json.loads(response.content)["error"]


async def test_json_posts_from_trusted_origins_need_no_token_and_scheme_and_port_count(settings) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com", "https://*.example.org"]
    settings.ALLOWED_HOSTS = [".example.com", "testserver"]
    client = AsyncClient(enforce_csrf_checks=True)
    assert (await client.get("/")).status_code == 200
    for origin, status in [
        ("https://chat.example.com", 201), ("https://a.example.org", 201), ("https://example.net", 403),
        ("http://chat.example.com", 403), ("https://chat.example.com:8443", 403),
        ("https://evil.example.com", 403),  # an allowed host is not a trusted origin
    ]:
        response = await client.post("/api/threads", data="{}", content_type="application/json", headers={"Origin": origin})
        assert response.status_code == status, origin


async def test_a_quiet_stream_sends_heartbeat_comments(standin, settings) -> None:
    settings.STREAM_SSE_HEARTBEAT_SECONDS = 0.2
    standin.script(Reply(text="late reply", first_token_delay=0.9))
    client = await guest()
    started = await start(client)
    response = await client.get(f"/api/runs/{started['run_id']}/events")
    chunks = await pieces(response)
    assert chunks.count(b": ping\n\n") >= 2
    got = sse_ids([c for c in chunks if c != b": ping\n\n"])
    assert text_of([event for _, event in got]) == "late reply"


async def test_a_retried_message_with_the_same_client_id_attaches_to_its_first_reply(standin) -> None:
    """A client that retries a send (a timeout, a proxy retrying on another worker) with
    the same `client_id` gets the reply the first attempt started: one model call, one
    user message, one reply."""
    standin.script(Reply(text=TEXT))
    client = await guest()
    status, thread = await call(client, "post", "/api/threads", {})
    url = f"/api/threads/{thread['id']}/messages"
    first_status, first = await call(client, "post", url, {"message": "hello", "client_id": "c-1"})
    again_status, again = await call(client, "post", url, {"message": "hello", "client_id": "c-1"})
    assert (first_status, again_status) == (201, 200)
    assert again == first
    assert text_of(await sse(client, first["run_id"])) == TEXT
    assert len(standin.requests) == 1
    assert [m.role async for m in Message.objects.filter(thread_id=thread["id"])] == ["user", "assistant"]
    # Another id is another message; the same id from another user is theirs alone.
    status, other = await call(client, "post", url, {"message": "again", "client_id": "c-2"})
    assert status == 201 and other["run_id"] != first["run_id"]
    bob = await guest()
    status, bobs_thread = await call(bob, "post", "/api/threads", {})
    status, bobs = await call(bob, "post", f"/api/threads/{bobs_thread['id']}/messages", {"message": "hi", "client_id": "c-1"})
    assert status == 201 and bobs["run_id"] != first["run_id"]
    for bad in ("", 5, "x" * 201):
        status, body = await call(client, "post", url, {"message": "hi", "client_id": bad})
        assert (status, body) == (400, {"error": "'client_id' must be a string of 1 to 200 characters."})
