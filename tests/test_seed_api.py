"""The seed examples' HTTP endpoints, read the way the examples' clients read them.

Every stream is read by a port of the seed's fetch loop (`tests/seed_clients.py`), which
also asserts that every read holds whole events; the text a seed client assembles must be
the stored reply byte for byte. One live daphne server covers the network path; the rest
runs in-process through `django.test.AsyncClient`.
"""

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import AsyncClient, Client

from streaming.models import Message, Thread
from tests.conftest import guest_client, guest_session
from tests.seed_clients import (
    buffered_client,
    chatkit_client,
    hybrid_client,
    live_post,
    message_client,
    monitored_client,
    pieces,
    resilient_client,
    seed_read,
    sse_ids,
)
from tests.standin import Reply, split_tokens

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("run_cleanup")]

TEXT = "Grüße — 世界 🎉! " + " ".join(f"word{i}" for i in range(40)) + "\n\n```py\nprint('ok')\n```"
TOKENS = split_tokens(TEXT)
SLOW = [f"w{i} " for i in range(400)]
METRIC_KEYS = {"total_tokens", "elapsed_seconds", "throughput_tokens_per_sec", "ttft_seconds"}


async def post(client: AsyncClient, url: str, body: Any, **headers: str) -> tuple[int, Any]:
    """POST a JSON body (or raw bytes); a stream's pieces, else the JSON answer."""
    data = body if isinstance(body, bytes) else json.dumps(body)
    response = await client.post(url, data=data, content_type="application/json", headers=headers)
    if response.streaming:
        return response.status_code, await pieces(response)
    return response.status_code, json.loads(response.content)


async def guest() -> AsyncClient:
    """An in-process client holding a guest session."""
    return await guest_client()


# A live server, with the seed's own clients.


@pytest.fixture
def live(daphne_server, standin):
    server = daphne_server(
        OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=standin.base_url, AGENT_MODEL="gpt-test",
        AGENT_API="responses",
    )
    client = guest_session(server.url)
    del client.headers["X-CSRFToken"]  # the seed's fetch calls send none (a browser sends Origin)
    yield client
    client.close()


def newest_reply(client) -> dict:
    """The newest thread's reply, through the native API."""
    thread = client.get("/api/threads").json()["threads"][0]
    return client.get(f"/api/threads/{thread['id']}/messages").json()["messages"][-1]


def test_seed_clients_read_whole_events_and_exactly_the_stored_reply_on_a_live_server(
    live, standin
) -> None:
    # Example 1: /api/stream/message.
    standin.script(Reply(text=TEXT, tps=300))
    status, chunks = live_post(live, "/api/stream/message", {"message": "hi"})
    assert status == 200 and len(chunks) > 3  # it streams, in many reads
    data = seed_read(chunks)
    text, errors = message_client(data)
    assert errors == [] and text == TEXT
    assert data[0]["type"] == "started" and data[-1]["type"] == "completed"
    assert Message.objects.get(pk=data[0]["run_id"]).content == TEXT

    # Example 3: /api/stream/buffered, default buffer_size 5; 23 and 20 tokens; then 10.
    for count, buffer_size, expected in [(23, None, [5, 5, 5, 5, 3]), (20, None, [5, 5, 5, 5]),
                                         (23, 10, [10, 10, 3])]:  # fmt: skip
        tokens = [f"é{i} " for i in range(count)]
        standin.script(Reply(tokens=tokens, tps=400))
        body = {"message": "hi"} | ({"buffer_size": buffer_size} if buffer_size else {})
        status, chunks = live_post(live, "/api/stream/buffered", body)
        data = seed_read(chunks)
        assert status == 200 and buffered_client(data) == "".join(tokens)
        assert [e["count"] for e in data if not e.get("final")] == expected
        assert [e.get("final") for e in data].count(True) == 1 and data[-1]["final"] is True
        assert newest_reply(live)["content"] == "".join(tokens)

    # Example 4: /api/stream/resilient; the connection drops, the retry replays the run.
    standin.script(Reply(tokens=SLOW[:60], tps=120))
    requests_before = len(standin.requests)
    body = {"message": "hi", "message_id": f"msg_{uuid.uuid4().hex}"}
    with live.stream("POST", "/api/stream/resilient", json=body) as response:
        first = []
        for chunk in response.iter_bytes():
            first += seed_read([chunk])
            if sum(1 for e in first if e.get("token")) >= 3:
                break  # the network fails
    status, chunks = live_post(live, "/api/stream/resilient", body)
    data = seed_read(chunks)
    text, error = resilient_client(data)
    assert status == 200 and error is None and text == "".join(SLOW[:60])
    assert data[: len(first)] == first  # replayed from the start
    assert [e["token_count"] for e in data if "token" in e] == sorted(
        {e["token_count"] for e in data if "token" in e}
    )
    assert {e["message_id"] for e in data} == {body["message_id"]}
    assert len(standin.requests) == requests_before + 1  # one model request for both attempts
    assert newest_reply(live)["content"] == text

    # Example 5: /api/stream/chatkit; the second turn reaches the model with the first.
    standin.script(Reply(text="Blue, like 🌊."), Reply(text=TEXT, tps=300))
    for message, expected in [("Favourite colour?", "Blue, like 🌊."), ("Why?", TEXT)]:
        status, chunks = live_post(live, "/api/stream/chatkit", {"message": message, "thread_id": "ck_1"})
        data = seed_read(chunks)
        assert status == 200 and chatkit_client(data) == expected
        assert {e["thread_id"] for e in data} == {"ck_1"}
    assert standin.requests[-1].json["input"] == [
        {"role": "user", "content": "Favourite colour?"},
        {"role": "assistant", "content": "Blue, like 🌊."},
        {"role": "user", "content": "Why?"},
    ]
    assert newest_reply(live)["content"] == TEXT

    # Example 6: /api/stream/monitored.
    standin.script(Reply(text=TEXT, tps=300))
    status, chunks = live_post(live, "/api/stream/monitored", {"message": "hi", "message_id": "m1"})
    data = seed_read(chunks)
    text, latest, seen = monitored_client(data)
    assert status == 200 and text == TEXT
    assert all(set(m) == METRIC_KEYS for m in seen)
    totals = [e["metrics"]["total_tokens"] for e in data if e.get("token")]
    assert totals == sorted(set(totals)) and totals[-1] == len(TOKENS)
    assert latest["total_tokens"] == len(TOKENS) and latest["ttft_seconds"] is not None
    assert latest["elapsed_seconds"] > 0 and latest["throughput_tokens_per_sec"] > 0
    assert newest_reply(live)["content"] == TEXT

    # Example 7: /api/stream/hybrid, then the polling fallback.
    standin.script(Reply(text=TEXT, tps=300))
    message_id = f"msg_{uuid.uuid4().hex}"
    status, chunks = live_post(live, "/api/stream/hybrid", {"message": "hi", "message_id": message_id})
    text = hybrid_client(seed_read(chunks))
    assert status == 200 and text == TEXT
    polled = live.get(f"/api/message/{message_id}").json()
    assert polled["message_id"] == message_id and polled["complete"] is True
    assert "".join(polled["tokens"]) == TEXT
    assert live.get(f"/api/message/{message_id}?after=2").json()["tokens"] == polled["tokens"][2:]
    assert newest_reply(live)["content"] == TEXT


# Bad requests: 400 before any stream, in each endpoint's error shape, nothing saved.


@dataclass
class Endpoint:
    url: str
    body: dict[str, Any] = field(default_factory=dict)  # fields the endpoint needs besides message
    fields: dict[str, Any] = field(default_factory=dict)  # its error fields besides "error"


EMPTY_METRICS = {"total_tokens": 0, "elapsed_seconds": 0.0, "throughput_tokens_per_sec": 0.0, "ttft_seconds": None}
ENDPOINTS = {
    "message": Endpoint("/api/stream/message", fields={"type": "error"}),
    "buffered": Endpoint("/api/stream/buffered", fields={"tokens": ""}),
    "resilient": Endpoint(
        "/api/stream/resilient", {"message_id": "m-1"}, {"type": "error", "message_id": "m-1"}
    ),
    "chatkit": Endpoint("/api/stream/chatkit", {"thread_id": "ck-1"}, {"thread_id": "ck-1"}),
    "monitored": Endpoint("/api/stream/monitored", {"message_id": "m-1"}, {"metrics": EMPTY_METRICS}),
    "hybrid": Endpoint("/api/stream/hybrid", {"message_id": "m-1"}),
}
UNPARSED_FIELDS = {  # the error fields when the body is not a JSON object
    "message": {"type": "error"}, "buffered": {"tokens": ""}, "resilient": {"type": "error"},
    "chatkit": {"thread_id": None}, "monitored": {"metrics": EMPTY_METRICS}, "hybrid": {},
}  # fmt: skip
NOT_AN_OBJECT = [(b"{not json", "not valid JSON"), (b"[1, 2]", "must be a JSON object"),
                 (b'"hello"', "must be a JSON object"), (b"\xff\xfe", "not valid JSON")]  # fmt: skip
REQUIRED = "'message' is required and must be a non-empty string."
TOO_LARGE = "'message' is larger than the limit of 32768 bytes."
BUFFER = "'buffer_size' must be a whole number from 1 to 1000."
FLUSH = "'flush_ms' must be a whole number from 0 to 5000."
BAD_FIELDS = [
    ({}, REQUIRED), ({"message": ""}, REQUIRED), ({"message": "  \n"}, REQUIRED),
    ({"message": None}, REQUIRED), ({"message": 5}, REQUIRED), ({"message": ["hi"]}, REQUIRED),
    ({"message": "é" * 16385}, TOO_LARGE),  # 16385 characters, 32770 bytes
    ({"message": "x" * 32769}, TOO_LARGE),
    ({"message": "hi", "buffer_size": 0}, BUFFER), ({"message": "hi", "buffer_size": 1001}, BUFFER),
    ({"message": "hi", "buffer_size": "5"}, BUFFER), ({"message": "hi", "buffer_size": True}, BUFFER),
    ({"message": "hi", "buffer_size": 5.0}, BUFFER),
    ({"message": "hi", "flush_ms": -1}, FLUSH), ({"message": "hi", "flush_ms": 5001}, FLUSH),
]  # fmt: skip


@pytest.mark.parametrize("name", ENDPOINTS)
def test_bad_requests_get_400_in_the_endpoints_error_shape_and_save_nothing(name) -> None:
    endpoint = ENDPOINTS[name]
    client = Client()
    for raw, expected in NOT_AN_OBJECT:
        response = client.post(endpoint.url, data=raw, content_type="application/json")
        assert response.status_code == 400, raw
        body = response.json()
        assert expected in body["error"] and body == {"error": body["error"], **UNPARSED_FIELDS[name]}
    for fields, expected in BAD_FIELDS:
        response = client.post(endpoint.url, data={**endpoint.body, **fields}, content_type="application/json")
        assert response.status_code == 400, fields
        assert response.json() == {"error": expected, **endpoint.fields}, fields
    assert Message.objects.count() == 0 and Thread.objects.count() == 0


def test_the_seed_endpoints_own_required_fields() -> None:
    client = Client()
    for url in ("/api/stream/resilient", "/api/stream/hybrid"):
        for bad in ({}, {"message_id": ""}, {"message_id": 7}, {"message_id": "x" * 201}):
            response = client.post(url, data={"message": "hi", **bad}, content_type="application/json")
            assert response.status_code == 400
            assert response.json()["error"] == "'message_id' must be a string of 1 to 200 characters."
    for bad in ({}, {"thread_id": ""}, {"thread_id": 7}, {"thread_id": "x" * 201}):
        response = client.post("/api/stream/chatkit", data={"message": "hi", **bad}, content_type="application/json")
        assert response.status_code == 400
        assert response.json() == {"error": "'thread_id' must be a string of 1 to 200 characters.", "thread_id": None}
    response = client.post(
        "/api/stream/resilient", data={"message": "hi", "message_id": "m", "token_count": -1},
        content_type="application/json",
    )
    assert response.status_code == 400 and "'token_count'" in response.json()["error"]
    assert Message.objects.count() == 0 and Thread.objects.count() == 0


def test_a_lone_surrogate_in_the_message_is_a_400_not_a_500() -> None:
    client = Client(raise_request_exception=False)
    response = client.post(
        "/api/stream/message", data=b'{"message": "hi \\ud800"}', content_type="application/json"
    )
    assert response.status_code == 400
    assert Message.objects.count() == 0


async def test_the_size_limit_counts_bytes_and_allows_exactly_the_limit(settings) -> None:
    settings.OPENAI_API_KEY = ""  # the offline model
    client = await guest()
    for message in ("é" * 16384, "x" * 32768):
        status, chunks = await post(client, "/api/stream/message", {"message": message})
        assert status == 200
        data = seed_read(chunks)
        assert data[-1]["type"] == "completed"
        reply = await Message.objects.select_related("thread").aget(pk=data[0]["run_id"])
        assert reply.content == message_client(data)[0]
        user_message = await reply.thread.messages.aget(role="user")
        assert user_message.content == message


# Model errors: the endpoint's error event, the partial text kept, status failed.


def check_failure(name: str, data: list[dict], thread_id: str, message_id: str) -> tuple[str, str]:
    """The text a seed client shows and the error it gets, after checking the shape."""
    last = data[-1]
    if name == "message":
        assert last["type"] == "error" and last["status"] == "failed"
        text, errors = message_client(data)
        assert errors == [last["error"]]
    elif name == "buffered":
        assert set(last) == {"tokens", "count", "final", "status", "error"}
        assert last["final"] is True and last["tokens"] == "" and last["count"] == 0
        text = buffered_client(data)
    elif name == "resilient":
        assert last == {"type": "error", "error": last["error"], "message_id": message_id}
        text, error = resilient_client(data)
        assert error == last["error"]
    elif name == "chatkit":
        assert last == {"error": last["error"], "thread_id": thread_id}
        text = chatkit_client(data)
    elif name == "monitored":
        assert set(last) == {"error", "metrics"} and set(last["metrics"]) == METRIC_KEYS
        text, latest, _ = monitored_client(data)
        assert latest == last["metrics"]
    else:
        assert last == {"error": last["error"]}
        text = hybrid_client(data)
    assert sum(1 for e in data if e.get("error")) == 1
    return text, last["error"]


@pytest.mark.parametrize(
    "reply, error, partial",
    [
        (Reply(error_status=429), "The model provider is rate-limiting requests (HTTP 429).", ""),
        (Reply(error_status=500), "The model provider returned an error (HTTP 500).", ""),
        (
            Reply(text="one two three four five six seven", drop_after=3),
            "The connection to the model provider was lost before the reply was complete.",
            "one two three",
        ),
    ],
    ids=["429", "500", "dropped"],
)
async def test_model_errors_reach_every_seed_client_and_keep_the_partial_text(
    standin, reply, error, partial
) -> None:
    client = await guest()
    for name, endpoint in ENDPOINTS.items():
        standin.script(reply)
        message_id, thread_id = f"m-{uuid.uuid4().hex}", f"ck-{uuid.uuid4().hex}"
        body = {"message": "hi", **endpoint.body}
        body |= {"message_id": message_id} if "message_id" in body else {}
        body |= {"thread_id": thread_id} if "thread_id" in body else {}
        status, chunks = await post(client, endpoint.url, body)
        assert status == 200, name
        text, got = check_failure(name, seed_read(chunks), thread_id, message_id)
        assert got.startswith(error), (name, got)
        assert text == partial, name
        stored = await Message.objects.filter(role="assistant").alatest("created_at")
        assert stored.status == "failed" and stored.content == partial, name
        assert stored.error.startswith(error), name


# Resilient: a retry with the same message_id attaches to the same run.


async def test_a_resilient_retry_attaches_to_the_run_and_replays_it_without_a_second_model_call(
    standin,
) -> None:
    standin.script(Reply(tokens=SLOW[:50], tps=100))
    client = await guest()
    body = {"message": "hi", "message_id": "msg_retry"}
    first_task = asyncio.create_task(post(client, "/api/stream/resilient", body))
    await asyncio.to_thread(standin.wait_for, lambda reqs: reqs and reqs[0].tokens_sent >= 10)
    # A retry while the reply is still generating replays from the start and follows it live.
    status, retry_chunks = await post(client, "/api/stream/resilient", body | {"message": "other"})
    status_first, first_chunks = await first_task
    assert status == status_first == 200
    first, retry = sse_ids(first_chunks), sse_ids(retry_chunks)
    assert retry == first
    assert resilient_client(seed_read(first_chunks)) == ("".join(SLOW[:50]), None)

    deltas = [(seq, e) for seq, e in first if "token" in e]
    assert [e["token_count"] for _, e in deltas] == sorted({e["token_count"] for _, e in deltas})
    for cut in (0, 1, len(deltas) // 2, len(deltas) - 1):
        seq, event = deltas[cut]
        # After Last-Event-ID: the events after that seq.
        status, chunks = await post(client, "/api/stream/resilient", body, **{"Last-Event-ID": str(seq)})
        assert status == 200 and sse_ids(chunks) == first[first.index((seq, event)) + 1 :]
        # After the client's token_count: the events after the delta that reached it.
        status, chunks = await post(
            client, "/api/stream/resilient", body | {"token_count": event["token_count"]}
        )
        replay = sse_ids(chunks)
        assert replay == first[first.index((seq, event)) + 1 :]
        assert "".join(e["token"] for _, e in deltas[: cut + 1]) + resilient_client(
            [e for _, e in replay]
        )[0] == "".join(SLOW[:50])
    status, chunks = await post(client, "/api/stream/resilient", body | {"token_count": 0})
    assert sse_ids(chunks) == first

    assert len(standin.requests) == 1
    reply = await Message.objects.select_related("thread").aget(client_id__endswith=":msg_retry")
    assert reply.content == "".join(SLOW[:50]) and reply.status == "completed"
    assert await reply.thread.messages.acount() == 2  # one question, one reply


async def test_concurrent_first_requests_with_one_message_id_start_one_run(standin) -> None:
    standin.script(Reply(text=TEXT, tps=200))
    client = await guest()
    body = {"message": "hi", "message_id": "msg_race"}
    (s1, c1), (s2, c2) = await asyncio.gather(
        post(client, "/api/stream/resilient", body), post(client, "/api/stream/resilient", body)
    )
    assert s1 == s2 == 200
    assert resilient_client(seed_read(c1)) == resilient_client(seed_read(c2)) == (TEXT, None)
    assert len(standin.requests) == 1
    assert await Thread.objects.acount() == 1 and await Message.objects.acount() == 2


async def test_another_user_with_the_same_message_id_gets_a_separate_run(standin) -> None:
    standin.script(Reply(text="For Ann only."), Reply(text="For Bob only."))
    ann, bob = await guest(), await guest()
    body = {"message": "hi", "message_id": "msg_shared"}
    _, ann_chunks = await post(ann, "/api/stream/resilient", body)
    _, bob_chunks = await post(bob, "/api/stream/resilient", body)
    assert resilient_client(seed_read(ann_chunks)) == ("For Ann only.", None)
    assert resilient_client(seed_read(bob_chunks)) == ("For Bob only.", None)
    assert len(standin.requests) == 2
    assert await Message.objects.filter(role="assistant").acount() == 2
    # Bob's hybrid poll of the shared id shows nothing of Ann's.
    response = await bob.get("/api/message/msg_shared")
    assert response.status_code == 200 and "Ann" not in response.content.decode()


# ChatKit threads.


async def test_chatkit_thread_ids_carry_history_per_user(standin) -> None:
    standin.script(Reply(text="Paris."), Reply(text="About 2 million."), Reply(text="Which city?"))
    ann, bob = await guest(), await guest()
    for message, answer in [("Capital of France?", "Paris."), ("Population?", "About 2 million.")]:
        _, chunks = await post(ann, "/api/stream/chatkit", {"message": message, "thread_id": "ck"})
        assert chatkit_client(seed_read(chunks)) == answer
    assert standin.requests[-1].json["input"] == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "Population?"},
    ]
    # Bob's "ck" is Bob's own conversation.
    _, chunks = await post(bob, "/api/stream/chatkit", {"message": "Population?", "thread_id": "ck"})
    assert chatkit_client(seed_read(chunks)) == "Which city?"
    assert standin.requests[-1].json["input"] == [{"role": "user", "content": "Population?"}]
    assert await Thread.objects.filter(external_id="ck").acount() == 2


# Hybrid: stream, and poll the same reply.


async def test_hybrid_tokens_stay_pollable_during_and_after_the_stream(standin) -> None:
    standin.script(Reply(tokens=SLOW[:40], tps=80))
    client, other = await guest(), await guest()
    body = {"message": "hi", "message_id": "msg_hybrid"}
    stream = asyncio.create_task(post(client, "/api/stream/hybrid", body))
    await asyncio.to_thread(standin.wait_for, lambda reqs: reqs and reqs[0].tokens_sent >= 10)
    await asyncio.sleep(0.1)
    during = json.loads((await client.get("/api/message/msg_hybrid")).content)
    assert during["complete"] is False and during["status"] == "streaming"
    assert "".join(SLOW[:40]).startswith("".join(during["tokens"])) and during["tokens"]
    status, chunks = await stream
    text = hybrid_client(seed_read(chunks))
    assert status == 200 and text == "".join(SLOW[:40])
    for _ in range(2):  # still readable, however often, after the end
        after = json.loads((await client.get("/api/message/msg_hybrid")).content)
        assert after["complete"] is True and after["status"] == "completed"
        assert "".join(after["tokens"]) == text
    assert json.loads((await client.get("/api/message/msg_hybrid?after=3")).content)["tokens"] == after["tokens"][3:]
    assert json.loads((await client.get("/api/message/msg_hybrid?after=999")).content)["tokens"] == []
    bad = await client.get("/api/message/msg_hybrid?after=-1")
    assert bad.status_code == 400 and json.loads(bad.content)["message_id"] == "msg_hybrid"
    for asker, message_id in [(other, "msg_hybrid"), (client, "nope")]:
        response = await asker.get(f"/api/message/{message_id}")
        assert response.status_code == 404
        assert json.loads(response.content) == {"error": "No such message.", "message_id": message_id}
    reply = await Message.objects.aget(client_id__endswith=":msg_hybrid")
    assert reply.content == text


async def test_a_non_decimal_digit_in_after_is_a_400_not_a_500(settings) -> None:
    settings.OPENAI_API_KEY = ""
    client = await guest()
    status, _ = await post(client, "/api/stream/hybrid", {"message": "hi", "message_id": "m2"})
    assert status == 200
    client.raise_request_exception = False
    response = await client.get("/api/message/m2?after=%C2%B2")
    assert response.status_code == 400


async def test_a_seed_stream_into_another_users_thread_is_refused(settings) -> None:
    settings.OPENAI_API_KEY = ""
    ann, bob = await guest(), await guest()
    _, chunks = await post(ann, "/api/stream/message", {"message": "my secret plans"})
    thread_id = seed_read(chunks)[0]["thread_id"]
    status, body = await post(bob, "/api/stream/message", {"message": "let me in", "thread_id": thread_id})
    assert status == 404 and body == {"error": "No such conversation.", "type": "error"}
    assert await Message.objects.filter(thread_id=thread_id).acount() == 2
    # Ann can continue it.
    status, chunks = await post(ann, "/api/stream/message", {"message": "more", "thread_id": thread_id})
    assert status == 200 and seed_read(chunks)[-1]["type"] == "completed"


async def test_seed_endpoints_answer_429_over_the_limits(standin, settings) -> None:
    settings.CHAT_MAX_CONCURRENT_RUNS = 1
    standin.script(Reply(tokens=SLOW, tps=40))
    client = await guest()
    task = asyncio.create_task(post(client, "/api/stream/message", {"message": "long one"}))
    await asyncio.to_thread(standin.wait_requests, 1)
    concurrent = "You already have 1 replies generating; wait for one to finish or stop it."
    for name, endpoint in ENDPOINTS.items():
        status, body = await post(client, endpoint.url, {"message": "second", **endpoint.body})
        assert status == 429, name
        assert body == {"error": concurrent, **endpoint.fields}, name
    # No new thread is left behind by a refusal (ChatKit's is the one its thread_id names).
    assert await Thread.objects.filter(external_id__isnull=True).acount() == 1
    running = await Message.objects.aget(role="assistant")
    response = await client.post(f"/api/runs/{running.pk}/stop", data={}, content_type="application/json")
    assert response.status_code == 202
    status, chunks = await task
    assert seed_read(chunks)[-1]["type"] == "stopped"

    settings.CHAT_MAX_CONCURRENT_RUNS = 3
    settings.CHAT_MESSAGES_PER_MINUTE = 2  # the first request's message counts too
    settings.OPENAI_API_KEY = ""
    status, chunks = await post(client, "/api/stream/buffered", {"message": "two"})
    assert status == 200 and seed_read(chunks)[-1]["final"] is True
    status, body = await post(client, "/api/stream/buffered", {"message": "three"})
    assert status == 429
    assert body == {"error": "You can send at most 2 messages a minute; try again shortly.", "tokens": ""}
    assert await Message.objects.filter(role="user").acount() == 2
