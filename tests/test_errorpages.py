"""A request that finds no free database connection gets 503 with Retry-After (the page
and the documented clients retry it); any other failure a plain 500 without a traceback."""

import pytest
from django.db import OperationalError
from django.test import Client
from psycopg_pool import PoolTimeout

from streaming import selectors

pytestmark = pytest.mark.django_db


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
    monkeypatch.setattr(selectors, "thread_list_for_user", failing(exhausted))
    response = Client(raise_request_exception=False).get("/api/threads")
    assert response.status_code == 503
    assert response["Retry-After"] == "2"
    assert response.json() == {"error": "The server is busy; retry shortly."}


def test_any_other_failure_is_a_plain_500(monkeypatch) -> None:
    monkeypatch.setattr(selectors, "thread_list_for_user", failing(OperationalError("disk on fire")))
    response = Client(raise_request_exception=False).get("/api/threads")
    assert response.status_code == 500
    assert b"disk on fire" not in response.content and b"Traceback" not in response.content
