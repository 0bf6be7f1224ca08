"""The input gate (streaming/inputs.py): every JSON body and WebSocket frame is parsed with
bounds, every field checked before use. Malformed input gets a clear 400 or error event,
never a 500, a closed socket or a half-written database; then random bodies and random
command sequences (hypothesis) against the ASGI app show the same."""

import asyncio
import json
import uuid
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from streaming.models import Message, Thread
from tests.conftest import guest_client
from tests.test_websocket import socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("run_cleanup")]

HUGE_NUMBER = b"9" * 5000
DEEP = b"[" * 50000 + b"]" * 50000
# Bodies no JSON endpoint may answer with a 500, whatever the field they land in.
MALFORMED = [
    b'{"message": ' + HUGE_NUMBER + b"}",
    b'{"message": "hi", "buffer_size": ' + HUGE_NUMBER + b"}",
    b'{"message": "hi", "after": 1' + b"0" * 400 + b"}",
    b'{"message": 1e999}',
    DEEP,
    b'{"message": ' + DEEP + b"}",
    b'{"message": "hi \\ud800"}',
    b'{"message": "hi", "title": "\\udfff"}',
    b'{"message": "hi", "client_id": "\\ud800x"}',
    b'{"message": "hi", "message_id": "a\\udc00"}',
    b'{"message": "hi", "thread_id": "\\ud83d"}',
    b'{"message": "a NUL \\u0000 inside"}',  # JSON allows it; PostgreSQL's text does not
    b'{"message": "hi", "title": "x\\u0000"}',
    b'{"message": "hi", "client_id": "\\u0000"}',
    b'{"message": "hi", "message_id": "a\\u0000"}',
    b'{"message": "hi", "thread_id": "\\u0000"}',
    b"\xef\xbb\xbf{}",
    b"\xff\xfe\x00",
    b"null",
    b'{"message": NaN}',
]
SEED_URLS = [
    "/api/stream/message", "/api/stream/buffered", "/api/stream/resilient",
    "/api/stream/chatkit", "/api/stream/monitored", "/api/stream/hybrid",
]  # fmt: skip


async def guest() -> AsyncClient:
    """An in-process client holding a guest session."""
    return await guest_client(raise_request_exception=False)


async def thread_of(client: AsyncClient) -> str:
    response = await client.post("/api/threads", {}, content_type="application/json")
    assert response.status_code == 201
    return response.json()["id"]


def json_urls(thread_id: str) -> list[tuple[str, str]]:
    return [
        ("post", "/api/threads"),
        ("post", f"/api/threads/{thread_id}/messages"),
        ("patch", f"/api/threads/{thread_id}"),
        ("post", f"/api/runs/{uuid.uuid4()}/stop"),
        *[("post", url) for url in SEED_URLS],
    ]


async def send(client: AsyncClient, method: str, url: str, raw: bytes) -> Any:
    return await getattr(client, method)(url, raw, content_type="application/json")


def assert_clear_refusal(response: Any, what: str) -> None:
    assert response.status_code < 500, (what, response.status_code)
    if response.status_code >= 400:
        assert "error" in response.json(), what


async def test_malformed_bodies_get_a_400_and_write_nothing() -> None:
    client = await guest()
    thread_id = await thread_of(client)
    for raw in MALFORMED:
        for method, url in json_urls(thread_id):
            if "/api/runs/" in url:
                continue  # a stop reads no body
            response = await send(client, method, url, raw)
            assert response.status_code == 400, (url, raw[:40])
            error = response.json()["error"]
            assert "JSON" in error or "must" in error or "required" in error, (url, error)
    assert await Message.objects.acount() == 0
    assert await Thread.objects.acount() == 1


@pytest.mark.parametrize("after", ["1" + "0" * 4300, str(2**64), str(2**53), "-1", "1e3", "²"])
async def test_resume_points_out_of_range_get_a_400(after, use_redis, settings) -> None:
    settings.OPENAI_API_KEY = ""
    client = await guest()
    thread_id = await thread_of(client)
    started = await send(client, "post", f"/api/threads/{thread_id}/messages", b'{"message": "hi"}')
    run_id = started.json()["run_id"]
    for url, headers in [
        (f"/api/runs/{run_id}/events?after={after}", {}),
        (f"/api/runs/{run_id}/events", {"Last-Event-ID": after}),
        (f"/api/runs/{run_id}/poll?after={after}", {}),
    ]:
        response = await client.get(url, headers=headers)
        assert response.status_code == 400, url
        assert "sequence number" in response.json()["error"]
    response = await client.get(f"/api/runs/{run_id}/poll?after={2**53 - 1}")
    assert response.status_code == 200 and response.json()["events"] == []


async def test_a_reply_deleted_during_a_long_poll_is_a_404(standin) -> None:
    from tests.standin import Reply

    standin.script(Reply(tokens=["slow "] * 5, tps=1, first_token_delay=3))
    client = await guest()
    thread_id = await thread_of(client)
    started = await send(client, "post", f"/api/threads/{thread_id}/messages", b'{"message": "hi"}')
    run_id = started.json()["run_id"]

    async def delete_soon() -> None:
        await asyncio.sleep(0.5)
        assert (await client.delete(f"/api/threads/{thread_id}")).status_code == 204

    poll, _ = await asyncio.gather(client.get(f"/api/runs/{run_id}/poll?after=1&wait=2"), delete_soon())
    assert poll.status_code == 404 and poll.json() == {"error": "No such reply."}


async def test_malformed_websocket_frames_get_an_error_and_the_socket_stays_usable(settings) -> None:
    settings.OPENAI_API_KEY = ""
    async with socket() as ws:
        for raw in MALFORMED:
            await ws.send_to(text_data=raw.decode("utf-8", "replace"))
            answer = await ws.receive_json_from(timeout=5)
            assert answer["type"] == "error", raw[:40]
        for frame in (
            {"command": "subscribe", "run_id": str(uuid.uuid4()), "after": 2**64},
            {"command": "start", "message": "hi", "flush_ms": 2**63},
            {"command": "stop", "run_id": {"x": [1]}},
        ):
            await ws.send_json_to(frame)
            assert (await ws.receive_json_from(timeout=5))["type"] == "error"
        await ws.send_json_to({"command": "start", "message": "still here"})
        got = [await ws.receive_json_from(timeout=5)]
        while got[-1].get("type") != "completed":
            got.append(await ws.receive_json_from(timeout=5))
        assert got[0]["type"] == "started"


# Random input.

KEYS = [
    "message", "thread_id", "title", "client_id", "message_id", "after", "buffer_size",
    "flush_ms", "token_count", "cancel_on_disconnect", "run_id", "command",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
    st.sampled_from(["", " ", "start", "subscribe", "stop", "pause", "resume", "watch", str(uuid.uuid4())]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
OBJECTS = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6)
BODIES = st.one_of(
    OBJECTS.map(lambda body: json.dumps(body).encode()),
    VALUES.map(lambda value: json.dumps(value).encode()),
    st.sampled_from(MALFORMED),
    st.binary(max_size=40),
)


async def no_reply_left_streaming() -> None:
    for _ in range(200):
        if not await Message.objects.filter(status="streaming").aexists():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("a reply was left streaming")


async def assert_database_intact() -> None:
    """Every reply answers a user message of its own thread, and none is left streaming."""
    await no_reply_left_streaming()
    async for thread in Thread.objects.all():
        users = await Message.objects.filter(thread=thread, role="user").acount()
        replies = await Message.objects.filter(thread=thread, role="assistant").acount()
        assert users == replies, thread.pk


@hsettings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(requests=st.lists(st.tuples(st.integers(min_value=0, max_value=9), BODIES), min_size=1, max_size=4))
def test_random_bodies_never_get_a_5xx(requests, settings) -> None:
    settings.OPENAI_API_KEY = ""

    async def scenario() -> None:
        client = await guest()
        thread_id = await thread_of(client)
        urls = json_urls(thread_id)
        for index, raw in requests:
            method, url = urls[index]
            assert_clear_refusal(await send(client, method, url, raw), f"{url} {raw[:60]!r}")
        await assert_database_intact()

    async_to_sync(scenario)()


FRAMES = st.one_of(
    OBJECTS.map(json.dumps),
    st.builds(lambda command, body: json.dumps({**body, "command": command}),
              st.sampled_from(["start", "subscribe", "stop", "pause", "resume", "watch"]), OBJECTS),
    st.sampled_from(MALFORMED).map(lambda raw: raw.decode("utf-8", "replace")),
    st.text(min_size=1, max_size=30),
)  # fmt: skip


@hsettings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(frames=st.lists(FRAMES, min_size=1, max_size=8))
def test_random_websocket_command_sequences_keep_the_socket_open(frames, settings) -> None:
    settings.OPENAI_API_KEY = ""

    async def scenario() -> None:
        async with socket() as ws:
            for frame in frames:
                await ws.send_to(text_data=frame)
            # A probe answered after everything sent before it: the socket is still open
            # and serving (a closed one makes receive_json_from fail).
            await ws.send_json_to({"command": "watch", "thread_id": "probe"})
            async with asyncio.timeout(10):
                while (await ws.receive_json_from(timeout=10)).get("error") != "No such conversation.":
                    pass
        await assert_database_intact()

    async_to_sync(scenario)()
