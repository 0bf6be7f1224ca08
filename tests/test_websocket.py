"""The WebSocket transport, `/ws/stream`: the seed hook's start/stop, bad commands, the
native subscribe/pause/resume/watch, other users' ids and the limits. In-process through
`channels.testing.WebsocketCommunicator`, plus the seed hook against one live daphne server."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.models import Session
from django.test import AsyncClient
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from chatproject.asgi import application
from streaming.models import Message, Thread, User
from tests.conftest import ended_reply
from tests.seed_clients import WebSocketHook
from tests.standin import Reply
from tests.test_seed_api import BUFFER, FLUSH, REQUIRED, TOO_LARGE

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("run_cleanup")]

TEXT = "Héllo — 世界 🎉! " + " ".join(f"word{i}" for i in range(40)) + "\n\n```py\nprint('ok')\n```"
SLOW = [f"w{i} " for i in range(400)]
ORIGIN = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
TERMINAL = {"completed", "stopped", "failed", "interrupted"}
Event = dict[str, Any]


@asynccontextmanager
async def socket(session: str | None = None, *, path: str = "/ws/stream") -> AsyncIterator[WebsocketCommunicator]:
    """A connection: with a session cookie, as that user; without, as a new guest."""
    headers = ORIGIN + ([(b"cookie", f"sessionid={session}".encode())] if session else [])
    ws = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await ws.connect(timeout=5)
    assert connected
    try:
        yield ws
    finally:
        await ws.disconnect(timeout=5)


async def session_of(name: str) -> tuple[User, str]:
    """A user and a logged-in session id for them."""
    user = await User.objects.acreate(username=f"{name}-{uuid.uuid4().hex[:8]}")
    client = AsyncClient()
    await client.aforce_login(user)
    return user, client.cookies["sessionid"].value


def is_end(event: Event) -> bool:
    """A run's terminal event in the WebSocket shape (failures arrive as `error`)."""
    return event.get("type") in TERMINAL or (event.get("type") == "error" and event.get("status") in TERMINAL)


async def receive_until(ws: WebsocketCommunicator, until: Callable[[Event], bool], timeout: float = 10) -> list[Event]:
    got: list[Event] = []
    async with asyncio.timeout(timeout):
        while True:
            got.append(await ws.receive_json_from(timeout=timeout))
            if until(got[-1]):
                return got


def tokens_of(got: list[Event]) -> str:
    return "".join(e["token"] for e in got if e.get("type") == "token")


def run_events(got: list[Event], run_id: str) -> list[Event]:
    return [e for e in got if e.get("run_id") == run_id and "seq" in e]


async def start(ws: WebsocketCommunicator, message: str = "hi", **fields: Any) -> str:
    """Send `start`; the run id from its `started` event."""
    await ws.send_json_to({"command": "start", "message": message, **fields})
    started = await ws.receive_json_from(timeout=5)
    while started["type"] == "thread":  # the native wire's notice to the sidebar may come first
        started = await ws.receive_json_from(timeout=5)
    assert started["type"] == "started", started
    return started["run_id"]


# The seed hook.


async def test_the_seed_hook_streams_a_reply_and_stop_ends_the_next(standin) -> None:
    standin.script(Reply(text=TEXT, tps=300), Reply(tokens=SLOW, tps=50))
    hook = WebSocketHook()
    async with socket() as ws:
        await ws.send_json_to({"command": "stop"})  # nothing to stop yet
        assert await ws.receive_json_from() == {"type": "stopped", "run_id": None}

        await ws.send_to(text_data=hook.start("Hello"))
        got = [hook.onmessage(json.dumps(e)) for e in await receive_until(ws, is_end)]
        assert got[0]["type"] == "started" and got[-1]["type"] == "completed"
        assert hook.error is None and hook.response == TEXT
        reply = await Message.objects.aget(pk=got[0]["run_id"])
        assert reply.content == TEXT and reply.status == "completed"

        await ws.send_to(text_data=hook.start("Long one"))
        got = await receive_until(ws, lambda e: e.get("type") == "token" and e["seq"] >= 5)
        await ws.send_to(text_data=hook.stop())
        got += await receive_until(ws, is_end)
        for event in got:
            hook.onmessage(json.dumps(event))
        assert got[-1]["type"] == "stopped" and hook.stopped and not hook.streaming
        assert await ws.receive_nothing(timeout=0.2)
        record = await asyncio.to_thread(standin.wait_closed_early, 1, 5)
        assert record.stream_closed_early and record.tokens_sent < len(SLOW)
        reply = await Message.objects.aget(pk=got[0]["run_id"])
        assert reply.status == "stopped" and reply.content == hook.response != ""
        assert [e["seq"] for e in got] == list(range(1, len(got) + 1))


async def test_the_seed_hook_on_a_live_server(daphne_server, standin) -> None:
    server = daphne_server(
        OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=standin.base_url, AGENT_MODEL="gpt-test",
        AGENT_API="responses",
    )
    standin.script(Reply(text=TEXT, tps=300), Reply(tokens=SLOW, tps=50))
    hook = WebSocketHook()
    uri = f"ws://127.0.0.1:{server.port}/ws/stream"
    async with ws_connect(uri, origin=server.url) as ws:
        await ws.send(hook.start("Hello"))
        got = []
        while not got or not is_end(got[-1]):
            got.append(hook.onmessage(await asyncio.wait_for(ws.recv(), 10)))
        assert got[-1]["type"] == "completed" and hook.response == TEXT and hook.error is None
        assert (await Message.objects.aget(pk=got[0]["run_id"])).content == TEXT

        await ws.send(hook.start("Long one"))
        got = []
        while len([e for e in got if e.get("type") == "token"]) < 5:
            got.append(hook.onmessage(await asyncio.wait_for(ws.recv(), 10)))
        await ws.send(hook.stop())
        while not is_end(got[-1]):
            got.append(hook.onmessage(await asyncio.wait_for(ws.recv(), 10)))
        assert got[-1]["type"] == "stopped" and hook.stopped and hook.error is None
        record = await asyncio.to_thread(standin.wait_closed_early, 1, 5)
        assert record.tokens_sent < len(SLOW)
        reply = await Message.objects.aget(pk=got[0]["run_id"])
        assert reply.status == "stopped" and reply.content == hook.response
    # A page on another site may not open it.
    with pytest.raises(InvalidStatus, match="HTTP 403"):
        async with ws_connect(uri, origin="http://evil.example"):
            pass


# Bad commands.


async def test_bad_commands_get_an_error_event_and_the_connection_keeps_working(standin) -> None:
    standin.script(Reply(text=TEXT, tps=300))
    unknown = "; expected one of: start, subscribe, stop, pause, resume, watch."
    frames: list[tuple[Any, Event]] = [
        ("{not json", {"error": "The message is not valid JSON: unexpected character, expected a string key: line 1 column 2 (char 1)"}),
        (b"\xff\xfe", None),
        ("[1, 2]", {"error": "A command must be a JSON object."}),
        ({}, {"error": "Unknown command None" + unknown}),
        ({"command": "dance"}, {"error": "Unknown command 'dance'" + unknown}),
        ({"command": "START", "message": "hi"}, {"error": "Unknown command 'START'" + unknown}),
        ({"command": "start"}, {"error": REQUIRED, "command": "start"}),
        ({"command": "start", "message": " "}, {"error": REQUIRED, "command": "start"}),
        ({"command": "start", "message": 7}, {"error": REQUIRED, "command": "start"}),
        ({"command": "start", "message": "é" * 16385}, {"error": TOO_LARGE, "command": "start"}),
        *[({"command": "start", "message": "hi", "buffer_size": bad}, {"error": BUFFER, "command": "start"})
          for bad in (0, 1001, "5", True)],
        *[({"command": "start", "message": "hi", "flush_ms": bad}, {"error": FLUSH, "command": "start"})
          for bad in (-1, 5001)],
        ({"command": "start", "message": "hi", "thread_id": "nope"}, {"error": "No such conversation.", "command": "start"}),
        ({"command": "subscribe", "run_id": "nope"}, {"error": "No such reply.", "command": "subscribe"}),
        ({"command": "subscribe", "run_id": str(uuid.uuid4()), "after": -1},
         {"error": "'after' must be a sequence number from 0 to 9007199254740991.", "command": "subscribe"}),
        ({"command": "stop", "run_id": str(uuid.uuid4())}, {"error": "No such reply.", "command": "stop"}),
        ({"command": "watch", "thread_id": None}, {"error": "No such conversation.", "command": "watch"}),
    ]  # fmt: skip
    async with socket() as ws:
        for frame, expected in frames:
            if isinstance(frame, bytes):
                await ws.send_to(bytes_data=frame)
            else:
                await ws.send_to(text_data=frame if isinstance(frame, str) else json.dumps(frame))
            answer = await ws.receive_json_from(timeout=5)
            if expected is None:
                assert answer["type"] == "error" and answer["error"].startswith("The message is not valid JSON")
            else:
                assert answer == {"type": "error", **expected}, frame
            assert await ws.receive_nothing(timeout=0.02), frame
        assert await Message.objects.acount() == 0 and await Thread.objects.acount() == 0

        run_id = await start(ws, "Now properly")
        got = await receive_until(ws, is_end)
        assert got[-1]["type"] == "completed" and tokens_of(got) == TEXT
        assert (await Message.objects.aget(pk=run_id)).content == TEXT


async def test_model_errors_reach_the_seed_hook_as_an_error_event_with_the_partial_text(
    standin,
) -> None:
    standin.script(
        Reply(error_status=429),
        Reply(error_status=500),
        Reply(text="one two three four five six seven", drop_after=3),
        Reply(text="Fine now."),
    )
    cases = [
        ("The model provider is rate-limiting requests (HTTP 429).", ""),
        ("The model provider returned an error (HTTP 500).", ""),
        ("The connection to the model provider was lost before the reply was complete.", "one two three"),
    ]
    async with socket() as ws:
        for error, partial in cases:
            hook = WebSocketHook()
            await ws.send_to(text_data=hook.start("hi"))
            got = [hook.onmessage(json.dumps(e)) for e in await receive_until(ws, is_end)]
            last = got[-1]
            assert last["type"] == "error" and last["status"] == "failed"
            assert last["error"] == hook.error and last["error"].startswith(error)
            assert hook.response == partial and not hook.streaming
            reply = await Message.objects.aget(pk=last["run_id"])
            assert reply.status == "failed" and reply.content == partial and reply.error == hook.error
        hook = WebSocketHook()
        await ws.send_to(text_data=hook.start("again"))
        for event in await receive_until(ws, is_end):
            hook.onmessage(json.dumps(event))
        assert hook.response == "Fine now." and hook.error is None


async def test_a_lone_surrogate_in_a_start_message_is_a_message_error() -> None:
    async with socket() as ws:
        await ws.send_to(text_data='{"command": "start", "message": "hi \\ud800"}')
        answer = await ws.receive_json_from(timeout=5)
        assert answer == {
            "type": "error",
            "error": "The message is not valid JSON: no low surrogate in string: line 1 column 37 (char 36)",
        }
    assert await Message.objects.acount() == 0


# Native commands.


async def test_every_native_connection_of_a_user_hears_that_a_conversation_had_a_message(settings) -> None:
    """The page's sidebar, in every tab: a new conversation (and each message after) is
    announced to all of the user's native-wire connections, on any worker; seed-shaped
    connections and other users hear nothing."""
    settings.OPENAI_API_KEY = ""
    _, session = await session_of("ann")
    _, other = await session_of("bob")
    async with (
        socket(session, path="/ws/stream?wire=native") as tab_a,
        socket(session, path="/ws/stream?wire=native") as tab_b,
        socket(session) as seed,
        socket(other, path="/ws/stream?wire=native") as stranger,
    ):
        run_id = await start(tab_a, "Cats   and dogs <b>")
        thread_id = str((await Message.objects.aget(pk=run_id)).thread_id)
        notice = {"type": "thread", "thread_id": thread_id, "title": "Cats and dogs <b>"}
        assert await tab_b.receive_json_from(timeout=5) == notice
        assert await seed.receive_nothing(timeout=0.2) and await stranger.receive_nothing(timeout=0.2)
        await tab_b.send_json_to({"command": "start", "message": "More", "thread_id": thread_id})
        while (got := await tab_a.receive_json_from(timeout=5)) != {**notice, "title": "Cats and dogs <b>"}:
            assert got.get("type") != "thread", got


async def test_subscribe_with_after_resumes_exactly_on_another_connection(standin) -> None:
    standin.script(Reply(tokens=SLOW[:80], tps=100))
    user, session = await session_of("ann")
    async with socket(session) as first:
        run_id = await start(first, flush_ms=5)
        head = await receive_until(first, lambda e: e.get("seq", 0) >= 4)
        # Live: a second connection of the same user picks the run up after seq 4.
        async with socket(session) as second:
            await second.send_json_to({"command": "subscribe", "run_id": run_id, "after": 4})
            live_tail = await receive_until(second, is_end)
        rest = await receive_until(first, is_end)
    full = [{"type": "started", "seq": 1}] + head + rest
    assert [e["seq"] for e in full] == list(range(1, len(full) + 1))
    assert live_tail == full[4:]
    text = tokens_of(full)
    assert text == "".join(SLOW[:80]) == (await Message.objects.aget(pk=run_id)).content
    # After the end, from any point.
    for after in (0, 1, len(full) // 2, len(full) - 1):
        async with socket(session) as ws:
            await ws.send_json_to({"command": "subscribe", "run_id": run_id, "after": after})
            got = await receive_until(ws, is_end)
            if after:
                assert got == full[after:]
            else:
                assert got[0]["type"] == "started" and got[1:] == full[1:]
            assert await ws.receive_nothing(timeout=0.05)
    async with socket(session) as ws:
        await ws.send_json_to({"command": "subscribe", "run_id": run_id, "after": len(full)})
        assert await ws.receive_nothing(timeout=0.3)


async def test_the_native_wire_sends_the_logs_events_as_they_are(standin) -> None:
    standin.script(
        Reply(text=TEXT, tps=300), Reply(text="one two three four five six seven", drop_after=3)
    )
    user, session = await session_of("ann")
    async with socket(session, path="/ws/stream?wire=native") as ws:
        run_id = await start(ws, "Hello")
        got = [{"type": "started", "seq": 1}] + await receive_until(ws, lambda e: e.get("type") in TERMINAL)
        notices = [e for e in got if e["type"] == "thread"]
        got = [e for e in got if e["type"] != "thread"]
        run_id2 = await start(ws, "Again")
        failed = await receive_until(ws, lambda e: e.get("type") in TERMINAL)
        await ws.send_json_to({"command": "watch", "thread_id": "nope"})  # connection messages: unchanged
        assert await ws.receive_json_from() == {"type": "error", "error": "No such conversation.", "command": "watch"}
    assert [e["seq"] for e in got] == list(range(1, len(got) + 1))
    thread_id = str((await Message.objects.aget(pk=run_id)).thread_id)
    assert notices in ([], [{"type": "thread", "thread_id": thread_id, "title": "Hello"}])  # it may come first
    deltas = [e for e in got if e["type"] == "delta"]
    assert deltas and all(set(e) >= {"run_id", "seq", "text", "tokens", "token_count", "elapsed"} for e in deltas)
    assert "token" not in deltas[0] and got[-1]["type"] == "completed"
    assert "".join(e["text"] for e in deltas) == TEXT == (await Message.objects.aget(pk=run_id)).content
    assert set(got[-1]["metrics"]) == {"ttft_seconds", "token_count", "duration_seconds", "tokens_per_second"}
    assert failed[-1]["type"] == "failed" and failed[-1]["run_id"] == run_id2 and failed[-1]["error"]
    # An unknown wire is the seed's.
    async with socket(session, path="/ws/stream?wire=nonsense") as ws:
        await ws.send_json_to({"command": "subscribe", "run_id": run_id, "after": 1})
        seed = await receive_until(ws, is_end)
    assert tokens_of(seed) == TEXT and seed[0]["type"] == "token"


async def test_a_paused_connection_that_leaves_stops_its_cancel_on_disconnect_run(standin) -> None:
    standin.script(Reply(tokens=SLOW, tps=50))
    async with socket() as ws:
        run_id = await start(ws, cancel_on_disconnect=True)
        await receive_until(ws, lambda e: e.get("seq", 0) >= 3)
        await ws.send_json_to({"command": "pause"})
        await receive_until(ws, lambda e: e.get("type") == "paused")
    record = await asyncio.to_thread(standin.wait_closed_early, 0, 10)
    assert record.stream_closed_early and record.tokens_sent < len(SLOW)
    reply = await ended_reply(run_id)
    assert reply.status == "stopped"


async def test_pause_then_resume_delivers_everything_missed_in_order(standin) -> None:
    standin.script(Reply(tokens=SLOW[:80], tps=100))
    async with socket() as ws:
        run_id = await start(ws, flush_ms=5)
        got = await receive_until(ws, lambda e: e.get("seq", 0) >= 5)
        await ws.send_json_to({"command": "pause"})
        got += await receive_until(ws, lambda e: e.get("type") == "paused")
        paused = got.pop()
        assert paused == {"type": "paused", "sent": {run_id: got[-1]["seq"]}}
        tokens_at_pause = standin.requests[0].tokens_sent
        assert await ws.receive_nothing(timeout=0.3)  # nothing while paused...
        assert standin.requests[0].tokens_sent > tokens_at_pause  # ...while generation goes on
        await ws.send_json_to({"command": "resume"})
        rest = await receive_until(ws, is_end)
        assert {"type": "resumed"} in rest
        rest.remove({"type": "resumed"})
    full = [{"type": "started", "seq": 1, "run_id": run_id}] + got + rest
    assert [e["seq"] for e in full] == list(range(1, len(full) + 1))
    assert full[-1]["type"] == "completed"
    assert tokens_of(full) == "".join(SLOW[:80]) == (await Message.objects.aget(pk=run_id)).content


async def test_a_second_connection_of_the_same_user_watches_a_thread_and_gets_its_runs_live(
    standin,
) -> None:
    standin.script(Reply(tokens=SLOW[:60], tps=100))
    user, session = await session_of("ann")
    thread = await Thread.objects.acreate(owner=user)
    async with socket(session) as tab1, socket(session) as tab2:
        await tab2.send_json_to({"command": "watch", "thread_id": str(thread.pk)})
        assert await tab2.receive_json_from() == {"type": "watching", "thread_id": str(thread.pk)}
        run_id = await start(tab1, "from tab 1", thread_id=str(thread.pk))
        announced = await tab2.receive_json_from(timeout=5)
        assert announced == {
            "type": "run", "run_id": run_id, "thread_id": str(thread.pk), "message": "from tab 1", "branch": False,
        }
        first = await receive_until(tab2, lambda e: e.get("type") == "token")
        assert (await Message.objects.aget(pk=run_id)).status == "streaming"  # it is live
        on_tab2 = first + await receive_until(tab2, is_end)
        on_tab1 = await receive_until(tab1, is_end)
    assert on_tab2[-1]["type"] == "completed" and on_tab2[0]["type"] == "started"
    assert [e["seq"] for e in on_tab2] == list(range(1, len(on_tab2) + 1))
    reply = await Message.objects.aget(pk=run_id)
    assert tokens_of(on_tab2) == tokens_of(on_tab1) == reply.content == "".join(SLOW[:60])
    assert reply.thread_id == thread.pk

    # A run started over HTTP in the watched thread reaches the watching connection too.
    standin.script(Reply(text=TEXT, tps=300))
    client = AsyncClient()
    client.cookies["sessionid"] = session
    async with socket(session) as tab3:
        await tab3.send_json_to({"command": "watch", "thread_id": str(thread.pk)})
        assert (await tab3.receive_json_from())["type"] == "watching"
        response = await client.post(
            f"/api/threads/{thread.pk}/messages", data={"message": "from HTTP"},
            content_type="application/json",
        )
        assert response.status_code == 201
        run_id = json.loads(response.content)["run_id"]
        got = await receive_until(tab3, is_end)
    assert got[0] == {
        "type": "run", "run_id": run_id, "thread_id": str(thread.pk), "message": "from HTTP", "branch": False,
    }
    assert tokens_of(got) == TEXT == (await Message.objects.aget(pk=run_id)).content


async def test_another_users_ids_get_error_events_and_none_of_the_text(standin) -> None:
    standin.script(Reply(tokens=["Ann's ", "secret ", "🗝 "] * 40, tps=150))
    async with socket() as ann, socket() as bob:
        run_id = await start(ann, "my private question")
        thread_id = str((await Message.objects.aget(pk=run_id)).thread_id)
        for command, expected in [
            ({"command": "subscribe", "run_id": run_id}, "No such reply."),
            ({"command": "subscribe", "run_id": run_id, "after": 3}, "No such reply."),
            ({"command": "stop", "run_id": run_id}, "No such reply."),
            ({"command": "watch", "thread_id": thread_id}, "No such conversation."),
            ({"command": "start", "message": "let me in", "thread_id": thread_id}, "No such conversation."),
        ]:
            await bob.send_json_to(command)
            assert await bob.receive_json_from(timeout=5) == {
                "type": "error", "error": expected, "command": command["command"]
            }
        assert await bob.receive_nothing(timeout=0.3)  # nothing of Ann's run leaks to Bob
        got = await receive_until(ann, is_end)
        assert got[-1]["type"] == "completed"  # Bob's stop did nothing
        assert await bob.receive_nothing(timeout=0.1)
    assert await Message.objects.filter(thread_id=thread_id).acount() == 2
    assert await Message.objects.acount() == 2


# Limits.


async def test_limits_are_error_events(standin, settings) -> None:
    settings.CHAT_MAX_CONCURRENT_RUNS = 1
    standin.script(Reply(tokens=SLOW, tps=50))
    async with socket() as ws:
        run_id = await start(ws, "long one")
        await ws.send_json_to({"command": "start", "message": "another"})
        answer = await receive_until(ws, lambda e: e.get("type") == "error")
        assert answer[-1] == {
            "type": "error", "command": "start", "code": "rate_limited",
            "error": "You already have 1 replies generating; wait for one to finish or stop it.",
        }
        await ws.send_json_to({"command": "stop", "run_id": run_id})
        assert (await receive_until(ws, is_end))[-1]["type"] == "stopped"

        settings.CHAT_MESSAGES_PER_MINUTE = 2
        settings.OPENAI_API_KEY = ""
        await start(ws, "two")
        assert (await receive_until(ws, is_end))[-1]["type"] == "completed"
        await ws.send_json_to({"command": "start", "message": "three"})
        assert await ws.receive_json_from(timeout=5) == {
            "type": "error", "command": "start", "code": "rate_limited",
            "error": "You can send at most 2 messages a minute; try again shortly.",
        }
    assert await Message.objects.filter(role="user").acount() == 2


async def test_a_refused_start_leaves_no_empty_thread(settings) -> None:
    settings.OPENAI_API_KEY = ""
    settings.CHAT_MESSAGES_PER_MINUTE = 1
    async with socket() as ws:
        await start(ws, "one")
        assert (await receive_until(ws, is_end))[-1]["type"] == "completed"
        for _ in range(3):
            await ws.send_json_to({"command": "start", "message": "refused"})
            assert (await ws.receive_json_from(timeout=5))["code"] == "rate_limited"
    assert await Thread.objects.acount() == 1



async def test_a_start_retried_with_the_same_client_id_follows_the_first_run(standin) -> None:
    standin.script(Reply(tokens=SLOW[:40], tps=100))
    _, session = await session_of("ann")
    async with socket(session) as first:
        run_id = await start(first, client_id="m-1", flush_ms=5)
        head = await receive_until(first, lambda e: e.get("seq", 0) >= 3)
    # The connection dropped; the client sends the same message again, on a new one.
    async with socket(session) as second:
        assert await start(second, client_id="m-1") == run_id
        got = await receive_until(second, is_end)
    assert tokens_of(got) == "".join(SLOW[:40])
    assert len(standin.requests) == 1
    assert await Message.objects.filter(role="user").acount() == 1
    assert head


async def test_a_connection_without_a_session_gets_its_guest_with_its_first_command(standin) -> None:
    standin.script(Reply(text="hi there", tps=0))
    async with socket() as ws:
        assert await ws.receive_nothing(timeout=0.1)
        assert await User.objects.acount() == 0  # an idle connection costs no user row
        await start(ws, "Hello")
        got = await receive_until(ws, is_end)
        await ws.send_json_to({"command": "watch", "thread_id": str(uuid.uuid4())})
        await ws.receive_json_from()
    assert tokens_of(got) == "hi there"
    guest = await User.objects.aget()  # one guest, for every command of the connection
    assert guest.is_guest and await Thread.objects.filter(owner=guest).acount() == 1


async def test_a_connection_is_its_sessions_user_while_the_session_still_verifies() -> None:
    """The session cookie makes the connection its user's; once the user's password has
    changed (the session no longer verifies) it is nobody's, and the session is ended."""
    ann, session = await session_of("ann")
    thread = await Thread.objects.acreate(owner=ann, title="Ann's")
    watch = {"command": "watch", "thread_id": str(thread.pk)}
    async with socket(session) as ws:
        await ws.send_json_to(watch)
        assert await ws.receive_json_from(timeout=5) == {"type": "watching", "thread_id": str(thread.pk)}
    ann.set_password("a new one")
    await ann.asave()
    async with socket(session) as ws:
        await ws.send_json_to(watch)
        assert await ws.receive_json_from(timeout=5) == {
            "type": "error", "error": "No such conversation.", "command": "watch"
        }
    assert await Session.objects.acount() == 0
