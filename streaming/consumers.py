"""The WebSocket endpoint, `/ws/stream`: authentication and the commands of a connection.

The seed's start/stop protocol plus the native commands (`subscribe`, `pause`, `resume`,
`watch`). `?wire=native` picks the native event shape (the page uses it); the default is
the seed's (`{"type": "token", "token"}`). Watching a thread (implicitly on `start` and
`subscribe`, or with `watch`) makes the connection follow runs that other tabs or devices
start in it. Bad input gets an error event; the connection stays open. Following and
sending is `transports.websocket.Followers`.
"""

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from . import drain, errorpages, errors, metrics, notify, runs, selectors
from .guests import TooManyGuests, guest_user_create
from .inputs import BadRequest, client_id_field, json_object, message_text, run_options, seq_field
from .models import User
from .transports import quota
from .transports.websocket import DEFAULT_WIRE, Followers
from .wire import WIRES

logger = logging.getLogger(__name__)

COMMANDS = ("start", "subscribe", "stop", "pause", "resume", "watch")


class StreamConsumer(AsyncWebsocketConsumer):
    # No channel layer: an idle connection then holds no channel and no receiving task
    # (thread notices come through `notify`, for the threads it watches).
    channel_layer_alias = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:  # also when the connection ended without `disconnect`
            drain.untrack(self)
            if getattr(self, "holds_stream", False) and self.user is not None:
                quota.give_back(self.user.pk)

    async def connect(self) -> None:
        self.user: User | None = None
        self.restarting = False
        self.watched: set[str] = set()
        self.announcements: set[asyncio.Task[None]] = set()
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        wire = query.get("wire", [DEFAULT_WIRE])[-1]
        self.followers = Followers(self._send_text, wire=wire if wire in WIRES else DEFAULT_WIRE)
        self.holds_stream = False  # one of its user's open streams (`quota`)
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            self.user = user
        await self.accept()
        if self.user is None and not settings.CHAT_ALLOW_GUESTS:
            await self.followers.error(errors.LOGIN_REQUIRED)
            await self.close(code=4401)
        elif self.user is not None and not self._hold_stream(self.user):
            await self.followers.error(quota.REFUSAL, code="too_many_streams")
            await self.close(code=quota.CLOSE_CODE)
        elif drain.track(self):  # the worker started draining while this one connected
            await self.restart()
        elif self.user is not None:
            await self._watch_user(self.user)

    def _hold_stream(self, user: User) -> bool:
        self.holds_stream = quota.take(user.pk)
        return self.holds_stream

    async def identity(self) -> User:
        """The connection's user. A client that never loaded a page (no session) gets a
        guest of its own with its first command (a connection that only idles costs no user
        row), within its address's budget of new guests. That guest lives as long as the
        connection: a WebSocket cannot set a cookie, and giving an identity to a session
        key the server did not just issue would let whoever planted the key share it. The
        chat page always has its session, and guest, before it connects."""
        if self.user is None:
            client = self.scope.get("client") or ("", 0)
            try:
                self.user = await guest_user_create(client[0])
            except TooManyGuests:
                raise runs.RunRefused(errors.TOO_MANY_GUESTS) from None
            self._hold_stream(self.user)  # a new guest holds none yet
            await self._watch_user(self.user)
        return self.user

    async def _send_text(self, text: str) -> None:
        await self.send(text_data=text)

    async def restart(self) -> None:
        """The worker is draining: close with 1012 (Service Restart), so that the client
        reconnects to another worker and subscribes again from its last seq. The runs it
        followed keep going, even those started with `cancel_on_disconnect`."""
        self.restarting = True
        self.followers.close()
        await self.close(code=drain.SERVICE_RESTART)

    async def disconnect(self, code: int) -> None:
        self.followers.close()
        for thread_id in self.watched:
            with contextlib.suppress(Exception):
                await notify.unwatch(thread_id, self._announced)
        for task in self.announcements:
            task.cancel()
        if not self.restarting:  # a restarting client resumes on another worker: it has not left
            await self.followers.leave()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.user is None and not settings.CHAT_ALLOW_GUESTS:
            return
        command = None
        try:
            body = json_object(
                text_data if text_data is not None else bytes_data or b"",
                what="The message", must="A command must",
            )
            command = body.get("command")
            if command not in COMMANDS:
                raise BadRequest(
                    f"Unknown command {command!r}; expected one of: {', '.join(COMMANDS)}."
                )
            await self.identity()
            await getattr(self, f"command_{command}")(body)
        except BadRequest as exc:
            metrics.refused("bad_request")
            await self.followers.error(str(exc), **({"command": command} if command in COMMANDS else {}))
        except runs.RunRefused as exc:
            await self.followers.error(str(exc), command=command, code=exc.code)
        except Exception as exc:
            if errorpages.unavailable(exc):  # Redis restarting: nothing was done; retry
                logger.warning("WebSocket command %s: the event log is unreachable", command)
                metrics.refused("unavailable")
                await self.followers.error(errorpages.BUSY, command=command, code="unavailable")
                return
            logger.exception("WebSocket command %s failed", command)
            await self.followers.error("The command failed unexpectedly.", command=command)

    # Commands.

    async def command_start(self, body: dict[str, Any]) -> None:
        assert self.user is not None
        text, options, client_id = message_text(body), run_options(body), client_id_field(body)
        thread_id, thread = body.get("thread_id"), None
        if thread_id:
            thread = await selectors.thread_for_user(user=self.user, thread_id=thread_id)
            if thread is None:
                raise BadRequest(errors.NO_THREAD)
        handle, _ = await runs.run_start_once(
            user=self.user, thread=thread, text=text, options=options, client_id=client_id
        )
        await self._watch(handle.thread_id)
        self.followers.follow(handle.run_id, 0)

    async def command_subscribe(self, body: dict[str, Any]) -> None:
        assert self.user is not None
        after = seq_field(body)
        reply = await selectors.reply_for_user(user=self.user, run_id=body.get("run_id"))
        if reply is None:
            raise BadRequest(errors.NO_RUN)
        await self._watch(str(reply.thread_id))
        self.followers.follow(str(reply.pk), after)

    async def command_stop(self, body: dict[str, Any]) -> None:
        assert self.user is not None
        run_id = body.get("run_id") or self.followers.current
        if run_id is None:
            await self.followers.control("stopped", run_id=None)  # nothing to stop
            return
        reply = await selectors.reply_for_user(user=self.user, run_id=run_id)
        if reply is None:
            raise BadRequest(errors.NO_RUN)
        if reply.status != "streaming":
            await self.followers.control("stopped", run_id=str(reply.pk))
            return
        await runs.run_stop(run_id=str(reply.pk))  # the run's `stopped` event follows

    async def command_pause(self, body: dict[str, Any]) -> None:
        await self.followers.control("paused", sent=self.followers.pause())

    async def command_resume(self, body: dict[str, Any]) -> None:
        self.followers.resume()
        await self.followers.control("resumed")

    async def command_watch(self, body: dict[str, Any]) -> None:
        assert self.user is not None
        thread = await selectors.thread_for_user(user=self.user, thread_id=body.get("thread_id"))
        if thread is None:
            raise BadRequest(errors.NO_THREAD)
        await self._watch(str(thread.pk))
        await self.followers.control("watching", thread_id=str(thread.pk))

    async def _watch_user(self, user: User) -> None:
        """On the native wire (the page), hear of the user's conversations as they have
        messages (the sidebar); the seed's shape has no such message."""
        if self.followers.wire == "native":
            await self._watch(notify.user_topic(user.pk))

    async def _watch(self, thread_id: str) -> None:
        if thread_id not in self.watched:
            self.watched.add(thread_id)
            await notify.watch(thread_id, self._announced)

    def _announced(self, notice: dict[str, Any]) -> None:
        task = asyncio.create_task(self.thread_run(notice))
        self.announcements.add(task)
        task.add_done_callback(self.announcements.discard)

    async def thread_run(self, notice: dict[str, Any]) -> None:
        """A run started in a watched thread (maybe by another tab): follow it. Or one of
        the user's conversations had a message: say so (the page's sidebar)."""
        if notice.get("type") == "thread":
            if not self.followers.closed:
                await self.followers.control("thread", thread_id=notice["thread_id"], title=notice["title"])
            return
        run_id = notice["run_id"]
        if not self.followers.knows(run_id) and not self.followers.closed:
            await self.followers.control(
                "run", run_id=run_id, thread_id=notice["thread_id"], message=notice["message"],
                branch=notice.get("branch", False),
            )
            self.followers.follow(run_id, 0)
