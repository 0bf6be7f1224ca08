"""A request that finds no free database connection gets 503 with Retry-After (the page
and the documented clients retry it); any other failure a plain 500 without a traceback."""

import json

import pytest
from django.db import OperationalError
from django.test import Client
from psycopg_pool import PoolTimeout

from streaming import selectors
from streaming.models import User

pytestmark = pytest.mark.django_db


def member() -> Client:
    """A logged-in client (whose thread list is read from the database)."""
    client = Client(raise_request_exception=False)
    client.force_login(User.objects.create(username="errorpages"))
    return client


def failing(exc: BaseException):
    async def fail(**kwargs):
        raise exc

    return fail


def pool_exhausted() -> OperationalError:
    """What Django raises when psycopg's pool has no free connection in time."""
    try:
        try:
            raise PoolTimeout("couldn't get a connection after 30.00 sec")
        except PoolTimeout as cause:
            raise OperationalError("couldn't get a connection after 30.00 sec") from cause
    except OperationalError as exc:
        return exc


def test_no_free_database_connection_is_a_503_with_retry_after(monkeypatch) -> None:
    exhausted = pool_exhausted()
    monkeypatch.setattr(selectors, "thread_search", failing(exhausted))
    response = member().get("/api/threads")
    assert response.status_code == 503
    assert response["Retry-After"] == "2"
    assert response.json() == {"error": "The server is busy; retry shortly."}


def test_any_other_failure_is_a_plain_500(monkeypatch) -> None:
    monkeypatch.setattr(selectors, "thread_search", failing(OperationalError("disk on fire")))
    response = member().get("/api/threads")
    assert response.status_code == 500
    assert b"disk on fire" not in response.content and b"Traceback" not in response.content


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("run_cleanup")
async def test_a_start_while_the_event_log_is_unreachable_is_a_503_and_leaves_nothing(settings, monkeypatch) -> None:
    """Redis restarting: the start waits a moment for it, then answers 503 with Retry-After
    (the client retries with the same client_id) and undoes what it had recorded; over the
    WebSocket, an error event saying so, the connection still open."""
    from streaming import manager
    from streaming.models import Message, Thread
    from tests.conftest import guest_client
    from tests.test_websocket import socket

    monkeypatch.setattr(manager, "START_RETRY_SECONDS", 0.3)
    client = await guest_client(raise_request_exception=False)
    thread = json.loads((await client.post("/api/threads", "{}", content_type="application/json")).content)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = await client.post(
        f"/api/threads/{thread['id']}/messages", json.dumps({"message": "hi", "client_id": "c-1"}),
        content_type="application/json",
    )
    assert response.status_code == 503 and response["Retry-After"] == "2"
    assert json.loads(response.content) == {"error": "The server is busy; retry shortly."}
    new_thread = await client.post("/api/stream/message", json.dumps({"message": "hi"}), content_type="application/json")
    assert new_thread.status_code == 503
    assert await Message.objects.acount() == 0 and await Thread.objects.acount() == 1
    async with socket() as ws:
        await ws.send_json_to({"command": "start", "message": "hi"})
        assert await ws.receive_json_from(timeout=10) == {
            "type": "error", "error": "The server is busy; retry shortly.", "command": "start", "code": "unavailable",
        }
        await ws.send_json_to({"command": "watch", "thread_id": "none"})
        assert (await ws.receive_json_from(timeout=5))["error"] == "No such conversation."
