"""Guest access: a visitor gets a real guest user at once, isolated like anyone else."""

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client
from django.urls import reverse

from streaming.models import Message, Thread, User
from streaming.offline_model import tokenize
from tests.sse import sse_data

pytestmark = pytest.mark.django_db(transaction=True)


def stream(client: Client, **body) -> tuple[int, list[dict]]:
    """POST to the streaming endpoint through the ASGI handler, with `client`'s session."""

    async def post() -> tuple[int, list[dict]]:
        aclient = AsyncClient()
        aclient.cookies = client.cookies
        response = await aclient.post(
            reverse("stream-message"), data=json.dumps(body), content_type="application/json"
        )
        client.cookies = aclient.cookies
        if response.status_code != 200:
            return response.status_code, [json.loads(response.content)]
        raw = b"".join([chunk async for chunk in response.streaming_content]).decode()
        return response.status_code, sse_data(raw)

    return async_to_sync(post)()


def test_reading_makes_no_guest_and_the_first_action_makes_one_that_is_kept() -> None:
    client = Client()
    page = client.get("/")
    assert page.status_code == 200 and b'data-identity="none"' in page.content
    assert client.get("/api/threads").json() == {"threads": [], "next_page": None}
    assert User.objects.count() == 0  # page views make no users
    assert client.post("/api/session", data={}, content_type="application/json").json() == {
        "user": {"username": User.objects.get().username, "guest": True}
    }
    guest = User.objects.get()
    assert guest.is_guest and guest.username.startswith("guest-")
    assert not guest.has_usable_password()
    assert b'data-identity="yes"' in client.get("/").content
    assert client.post("/api/threads", data={}, content_type="application/json").status_code == 201
    assert User.objects.count() == 1


def test_a_guest_chats_with_the_offline_model_at_once() -> None:
    client = Client()
    status, events = stream(client, message="Hello, offline model")
    assert status == 200
    assert events[0]["type"] == "started"
    tokens = [e["token"] for e in events if e["type"] == "token"]
    assert events[-1]["type"] == "completed"
    reply = Message.objects.get(pk=events[0]["run_id"])
    assert reply.content == "".join(tokens)
    assert reply.content.startswith("**Offline model**")
    assert "> Hello, offline model" in reply.content
    assert reply.status == "completed" and reply.model_name == "offline"
    assert reply.token_count == len(tokenize(reply.content)) and reply.tokens_per_second > 0
    assert reply.thread.owner.is_guest
    assert reply.thread.title == "Hello, offline model"


def test_one_guest_cannot_read_or_write_another_guests_thread() -> None:
    first, second = Client(), Client()
    _, events = stream(first, message="my secret plans")
    thread_id = events[0]["thread_id"]

    assert first.get(f"/t/{thread_id}").status_code == 200
    assert b"my secret plans" in first.get(f"/t/{thread_id}").content

    page = second.get(f"/t/{thread_id}")
    assert page.status_code == 404
    assert b"my secret plans" not in page.content
    status, body = stream(second, message="let me in", thread_id=thread_id)
    assert status == 404 and body[0]["error"] == "No such conversation."
    assert Message.objects.filter(thread_id=thread_id).count() == 2
    assert b"my secret plans" not in second.get("/").content


def test_without_guest_access_visitors_must_log_in(settings) -> None:
    settings.CHAT_ALLOW_GUESTS = False
    client = Client()
    page = client.get("/")
    assert page.status_code == 302 and page["Location"].startswith("/accounts/login/")
    status, body = stream(client, message="hi")
    assert status == 401
    assert User.objects.count() == 0


def test_signing_up_turns_the_guest_into_an_account_with_its_threads() -> None:
    client = Client()
    _, events = stream(client, message="remember me")
    guest = User.objects.get()
    response = client.post(
        reverse("signup"),
        {"username": "carol", "password1": "a-long-pass-phrase-9", "password2": "a-long-pass-phrase-9"},
    )
    assert response.status_code == 302
    carol = User.objects.get()
    assert carol.pk == guest.pk and carol.username == "carol" and not carol.is_guest
    assert Thread.objects.get().owner == carol
    assert client.get("/").context["user"] == carol


def test_log_in_and_log_out() -> None:
    User.objects.create_user("dave", password="pw-dave-12345")
    client = Client()
    assert client.get(reverse("login")).status_code == 200
    response = client.post(reverse("login"), {"username": "dave", "password": "pw-dave-12345"})
    assert response.status_code == 302
    assert client.get("/").context["user"].username == "dave"
    assert client.post(reverse("logout")).status_code == 302
    assert not client.get("/").context["user"].is_authenticated  # reading makes no guest


def test_pages_that_do_not_exist_and_static_files_make_no_guests() -> None:
    for index in range(50):
        client = Client()
        assert client.get(f"/no-such-page-{index}").status_code == 404
        assert client.get(f"/api/no-such-endpoint-{index}").status_code == 404
        client.get("/static/nothing.css")
        client.get("/favicon.ico")
    assert User.objects.count() == 0


def test_new_guests_per_address_are_limited_and_existing_guests_unaffected(settings) -> None:
    from django.core.cache import cache

    cache.clear()
    settings.CHAT_GUESTS_PER_ADDRESS = "3/h"
    def new_visitor(**extra: str) -> Client:
        client = Client(**extra)
        client.post("/api/session", data={}, content_type="application/json")
        return client

    first = new_visitor()
    for _ in range(2):
        new_visitor()
    page = Client().post("/", data={})
    assert page.status_code == 429 and "Too many new guests" in page.content.decode()
    api = Client().post("/api/threads", data={}, content_type="application/json")
    assert api.status_code == 429
    assert api.json() == {"error": "Too many new guests from your address; log in or sign up, or try again later."}
    assert User.objects.count() == 3
    assert first.post("/api/threads", data={}, content_type="application/json").status_code == 201
    new_visitor(REMOTE_ADDR="10.1.2.3")  # another address
    assert User.objects.count() == 4


async def test_a_websocket_guest_counts_against_the_address_budget(settings) -> None:
    from django.core.cache import cache

    from tests.test_websocket import socket

    await asyncio.to_thread(cache.clear)
    settings.CHAT_GUESTS_PER_ADDRESS = "1/h"
    settings.OPENAI_API_KEY = ""
    async with socket() as ws:  # an idle connection makes no guest
        pass
    async with socket() as ws:
        await ws.send_json_to({"command": "watch", "thread_id": "none"})
        assert (await ws.receive_json_from(timeout=5))["error"] == "No such conversation."
    async with socket() as ws:
        await ws.send_json_to({"command": "start", "message": "hi"})
        refused = await ws.receive_json_from(timeout=5)
        assert refused["code"] == "rate_limited" and "Too many new guests" in refused["error"]
        await ws.send_json_to({"command": "watch", "thread_id": "none"})  # still open
        assert (await ws.receive_json_from(timeout=5))["code"] == "rate_limited"
    assert await User.objects.acount() == 1
