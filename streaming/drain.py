"""Graceful restart: what a worker does between SIGTERM and exiting.

On SIGTERM the worker drains. New HTTP requests get 503 with `Retry-After: 1` and new
WebSocket handshakes are refused, so a proxy retries them on another worker. Open WebSocket
connections close with 1012 (Service Restart) and resumable SSE streams end, so their
clients resume elsewhere from their last seq. The runs this worker produces keep generating
(their events are in the shared log) for up to `STREAM_DRAIN_SECONDS`; those still going
then end `interrupted` with their partial text. Then the server's own SIGTERM handler runs
and the process exits. A second SIGTERM ends the remaining runs at once.

`DrainGate` wraps the ASGI application: it installs the handler on the first connection
(inside the server's running event loop) and turns connections away while draining.
"""

import asyncio
import contextlib
import json
import logging
import os
import signal
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from django.conf import settings

from . import agent_runtime, metrics
from .manager import run_manager

logger = logging.getLogger(__name__)

SERVICE_RESTART = 1012  # the WebSocket close code for "Service Restart"
RESTARTING = "This server is restarting; retry."
STREAM_GRACE_SECONDS = 2.0  # once the runs have ended, how long open streams get to end
RECHECK_SECONDS = 1.0  # how often a wait looks again at runs started meanwhile

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Restartable(Protocol):
    """An open connection that ends itself (or not) when the worker starts draining."""

    async def restart(self) -> None: ...


class Drain:
    """This process's drain: its SIGTERM handler, state and open connections."""

    def __init__(self) -> None:
        self.installed = False
        self.draining = False
        self.previous: Callable[..., Any] | None = None  # the server's SIGTERM handler
        self.hurry = False  # a second SIGTERM: end the runs now
        self.changed = asyncio.Event()  # a connection ended, or SIGTERM came again
        self.task: asyncio.Task[None] | None = None
        self.connections: weakref.WeakSet[Restartable] = weakref.WeakSet()

    def install(self) -> None:
        """Take over SIGTERM in the running loop, if a server handles it (daphne's Twisted
        reactor does) and we are on the main thread; once per process."""
        if self.installed:
            return
        self.installed = True
        previous = signal.getsignal(signal.SIGTERM)
        if threading.current_thread() is not threading.main_thread() or not callable(previous):
            return  # no server to hand back to (e.g. the application driven in-process)
        self.previous = previous
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self._on_sigterm)

    def track(self, connection: Restartable) -> bool:
        self.connections.add(connection)
        return self.draining

    def untrack(self, connection: Restartable) -> None:
        self.connections.discard(connection)
        self.changed.set()

    def _on_sigterm(self) -> None:
        if self.draining:
            logger.warning("SIGTERM again: ending this worker's runs now")
            self.hurry = True
            self.changed.set()
            return
        self.draining = True
        self.task = asyncio.get_running_loop().create_task(self._drain(), name="drain")

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        manager = run_manager()
        try:
            logger.info(
                "SIGTERM: draining (%d runs, %d connections, up to %gs)",
                len(manager.tasks), len(self.connections), settings.STREAM_DRAIN_SECONDS,
            )
            for failure in await asyncio.gather(
                *(connection.restart() for connection in list(self.connections)),
                return_exceptions=True,
            ):
                if isinstance(failure, Exception):
                    logger.warning("drain: a connection failed to close", exc_info=failure)
            # This worker's runs keep generating, and streams that cannot resume keep
            # following theirs, until both are over or the deadline.
            await self._wait_until(
                lambda: not manager.tasks and not self.connections,
                loop.time() + settings.STREAM_DRAIN_SECONDS,
            )
            if manager.tasks:
                logger.warning("drain: interrupting %d runs still generating", len(manager.tasks))
            await manager.shutdown()  # each run left ends `interrupted` with its partial text
            # The streams following those runs get a moment to send their end.
            await self._wait_until(lambda: not self.connections, loop.time() + STREAM_GRACE_SECONDS)
        except Exception:
            logger.exception("drain failed; stopping anyway")
        finally:
            with contextlib.suppress(Exception):
                await agent_runtime.close_clients()
            self._hand_back()

    async def _wait_until(self, done: Callable[[], bool], deadline: float) -> None:
        """Until `done()`, the deadline, or a second SIGTERM; looking again whenever a run
        or a connection ends (and at least every `RECHECK_SECONDS`)."""
        loop = asyncio.get_running_loop()
        manager = run_manager()
        while not done() and not self.hurry and (remaining := deadline - loop.time()) > 0:
            self.changed.clear()
            changed = asyncio.ensure_future(self.changed.wait())
            try:
                await asyncio.wait(
                    [changed, *manager.tasks.values()],
                    timeout=min(remaining, RECHECK_SECONDS),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                changed.cancel()

    def _hand_back(self) -> None:
        """Restore the server's SIGTERM handler and signal again: the server stops."""
        logger.info("drained; stopping")
        asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, self.previous or signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


_drain = Drain()


def track(connection: Restartable) -> bool:
    """Remember an open connection, to `restart` it when the worker drains; returns
    whether it is draining already (then the caller ends the connection itself)."""
    return _drain.track(connection)


def untrack(connection: Restartable) -> None:
    _drain.untrack(connection)


class DrainGate:
    """ASGI middleware: installs the SIGTERM handler on the first connection; while the
    worker drains, answers HTTP requests 503 and refuses WebSocket handshakes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        _drain.install()
        if scope["type"] == "websocket":
            send = with_restart_close(send)
        if not _drain.draining:
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            metrics.refused("draining")
            await _unavailable(send)
        elif scope["type"] == "websocket":
            metrics.refused("draining")
            await receive()  # websocket.connect
            await send({"type": "websocket.close"})  # before accepting: the handshake is refused
        else:
            await self.app(scope, receive, send)


async def _unavailable(send: Send) -> None:
    body = json.dumps({"error": RESTARTING}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def with_restart_close(send: Send) -> Send:
    """`send` for a WebSocket, able to close with 1012 under daphne: its WebSocket library
    (autobahn) refuses to send close codes other than 1000 and 3000-4999, so that one close
    frame goes straight to daphne's protocol (daphne passes `send` as
    `functools.partial(server.handle_reply, protocol)`). Other servers: `send` unchanged."""
    args = getattr(send, "args", None)
    protocol = args[0] if args else None
    if not hasattr(protocol, "sendCloseFrame") or not hasattr(protocol, "STATE_OPEN"):
        return send

    async def restart_close(message: Message) -> None:
        if (
            message.get("type") == "websocket.close"
            and message.get("code") == SERVICE_RESTART
            and protocol.state == protocol.STATE_OPEN
        ):
            protocol.sendCloseFrame(code=SERVICE_RESTART, isReply=False)
            return
        await send(message)

    return restart_close
