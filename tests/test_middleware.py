"""The worker's ASGI handler runs Django's middleware on the event loop: a request goes
through the whole chain without a middleware hook hopping to a thread (Django's stock
handler makes about eight such hops), and still gets every header those middleware add."""

import asyncio
import threading

import pytest
from asgiref import sync
from asgiref.testing import ApplicationCommunicator
from django.core.handlers.asgi import ASGIHandler as DjangoASGIHandler

from streaming.middleware import ASGIHandler


async def get(handler: DjangoASGIHandler, path: str) -> tuple[int, dict[bytes, bytes]]:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    app = ApplicationCommunicator(handler, scope)
    await app.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await app.receive_output(5)
    await app.receive_output(5)  # the body
    return start["status"], {name.lower(): value for name, value in start["headers"]}


@pytest.mark.parametrize("handler, hops", [(ASGIHandler, 0), (DjangoASGIHandler, 8)])
async def test_a_request_crosses_the_middleware_without_thread_hops(monkeypatch, handler, hops) -> None:
    made: list[object] = []
    real = sync.SyncToAsync.__init__

    def counting(self, func, *args, **kwargs):  # type: ignore[no-untyped-def]
        made.append(func)
        real(self, func, *args, **kwargs)

    instance = handler()
    monkeypatch.setattr(sync.SyncToAsync, "__init__", counting)
    status, headers = await get(instance, "/healthz")
    assert status == 200
    hooks = [name for f in made if "process_" in (name := getattr(f, "__qualname__", repr(f)))]
    assert len(hooks) >= hops if hops else hooks == []
    # What the middleware add is all there: security, framing, CSP headers.
    assert headers[b"x-frame-options"] == b"DENY"
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert b"content-security-policy" in headers


async def test_requests_run_their_database_calls_on_a_few_threads_each_on_one(settings) -> None:
    """Each request keeps to one thread (Django's thread-sensitive code relies on it); a
    burst of requests shares `SYNC_THREADS` threads instead of starting a thread each."""
    settings.SYNC_THREADS = 3
    handler = ASGIHandler()
    seen: list[tuple[int, int]] = []

    async def handle(scope: object, receive: object, send: object) -> None:
        first = await sync.sync_to_async(threading.get_ident)()
        await asyncio.sleep(0.01)  # the other requests' calls meanwhile
        seen.append((first, await sync.sync_to_async(threading.get_ident)()))

    handler.handle = handle  # type: ignore[method-assign]
    await asyncio.gather(*[handler({"type": "http"}, None, None) for _ in range(12)])
    assert len(seen) == 12 and all(first == second for first, second in seen)
    assert len({first for first, _ in seen}) == 3
    assert threading.get_ident() not in {first for first, _ in seen}
