"""The WebSocket transport, `/ws/stream`: the seed's start/stop protocol plus the native
commands (`subscribe`, `pause`, `resume`, `watch`) on the same connection.

Every run the connection follows is one follower task over `run_subscribe(run_id, after)`;
the connection remembers the last sequence number it sent for each, so `resume` (or a new
connection's `subscribe`) continues exactly where delivery stopped. Watching a thread
(implicitly on `start`/`subscribe`, or with `watch`) makes the connection follow runs that
other tabs or devices start in it. Bad input gets an error event; the connection stays open.
"""

import asyncio
import contextlib
import json
import logging
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from . import drain, runs, selectors
from .events import is_terminal
from .formatters import seed_message
from .guests import guest_user_create
from .http import BadRequest, client_id_field, message_text, run_options
from .models import User

logger = logging.getLogger(__name__)

COMMANDS = ("start", "subscribe", "stop", "pause", "resume", "watch")


def thread_group(thread_id: str) -> str:
    return f"thread.{thread_id}"


class StreamConsumer(AsyncWebsocketConsumer):
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            drain.untrack(self)  # also when the connection ended without `disconnect`

    async def connect(self) -> None:
        self.user: User | None = None
        self.followers: dict[str, asyncio.Task[None]] = {}
        self.sent: dict[str, int] = {}  # run id -> last seq sent on this connection
        self.done: set[str] = set()  # runs whose terminal event was sent
        self.paused = False
        self.restarting = False
        self.current: str | None = None
        self.watched: set[str] = set()
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            self.user = user
        elif settings.CHAT_ALLOW_GUESTS:
            # A client that never loaded a page (no session): a guest for this connection.
            self.user = await guest_user_create()
        await self.accept()
        if self.user is None:
            await self.send_json({"type": "error", "error": "Log in to chat."})
            await self.close(code=4401)
        elif drain.track(self):  # the worker started draining while this one connected
            await self.restart()

    async def restart(self) -> None:
        """The worker is draining: close with 1012 (Service Restart), so that the client
        reconnects to another worker and subscribes again from its last seq. The runs it
        followed keep going, even those started with `cancel_on_disconnect`."""
        self.restarting = True
        for task in self.followers.values():
            task.cancel()
        await self.close(code=drain.SERVICE_RESTART)

    async def disconnect(self, code: int) -> None:
        for task in self.followers.values():
            task.cancel()
        for thread_id in self.watched:
            with contextlib.suppress(Exception):
                await self.channel_layer.group_discard(thread_group(thread_id), self.channel_name)
        if self.restarting:
            return  # the client resumes on another worker: it has not left
        for run_id in list(self.followers):
            if await runs.run_cancels_on_disconnect(run_id):
                await runs.run_stop(run_id=run_id)

    async def send_json(self, payload: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(payload, ensure_ascii=False))

    async def error(self, message: str, **extra: Any) -> None:
        await self.send_json({"type": "error", "error": message, **extra})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.user is None:
            return
        try:
            body = json.loads(text_data if text_data is not None else bytes_data or b"")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            await self.error(f"The message is not valid JSON: {exc}")
            return
        if not isinstance(body, dict):
            await self.error("A command must be a JSON object.")
            return
        command = body.get("command")
        if command not in COMMANDS:
            await self.error(
                f"Unknown command {command!r}; expected one of: {', '.join(COMMANDS)}."
            )
            return
        try:
            await getattr(self, f"command_{command}")(body)
        except BadRequest as exc:
            await self.error(str(exc), command=command)
        except runs.RunRefused as exc:
            await self.error(str(exc), command=command, code=exc.code)
        except Exception:
            logger.exception("WebSocket command %s failed", command)
            await self.error("The command failed unexpectedly.", command=command)

    # Commands.

    async def command_start(self, body: dict[str, Any]) -> None:
        assert self.user is not None
        text, options, client_id = message_text(body), run_options(body), client_id_field(body)
        thread_id, thread = body.get("thread_id"), None
        if thread_id:
            thread = await selectors.thread_for_user(user=self.user, thread_id=thread_id)
            if thread is None:
                raise BadRequest("No such conversation.")
        handle, _ = await runs.run_start_once(
            user=self.user, thread=thread, text=text, options=options, client_id=client_id
        )
        await self._watch(handle.thread_id)
        self._follow(handle.run_id, 0)

    async def command_subscribe(self, body: dict[str, Any]) -> None:
        run_id, after = body.get("run_id"), body.get("after", 0)
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise BadRequest("'after' must be a sequence number of 0 or more.")
        reply = await runs.run_for_user(user=self.user, run_id=run_id)  # type: ignore[arg-type]
        if reply is None:
            raise BadRequest("No such reply.")
        await self._watch(str(reply.thread_id))
        self._follow(str(reply.pk), after)

    async def command_stop(self, body: dict[str, Any]) -> None:
        run_id = body.get("run_id") or self.current
        if run_id is None:
            await self.send_json({"type": "stopped", "run_id": None})  # nothing to stop
            return
        reply = await runs.run_for_user(user=self.user, run_id=run_id)  # type: ignore[arg-type]
        if reply is None:
            raise BadRequest("No such reply.")
        if reply.status != "streaming":
            await self.send_json({"type": "stopped", "run_id": str(reply.pk)})
            return
        await runs.run_stop(run_id=str(reply.pk))  # the run's `stopped` event follows

    async def command_pause(self, body: dict[str, Any]) -> None:
        self.paused = True
        for task in self.followers.values():
            task.cancel()
        self.followers.clear()
        await self.send_json({"type": "paused", "sent": self.sent})

    async def command_resume(self, body: dict[str, Any]) -> None:
        self.paused = False
        for run_id, last in self.sent.items():
            if run_id not in self.followers and run_id not in self.done:
                self._follow(run_id, last)
        await self.send_json({"type": "resumed"})

    async def command_watch(self, body: dict[str, Any]) -> None:
        thread = await selectors.thread_for_user(user=self.user, thread_id=body.get("thread_id"))  # type: ignore[arg-type]
        if thread is None:
            raise BadRequest("No such conversation.")
        await self._watch(str(thread.pk))
        await self.send_json({"type": "watching", "thread_id": str(thread.pk)})

    # Following runs.

    async def _watch(self, thread_id: str) -> None:
        if thread_id not in self.watched:
            self.watched.add(thread_id)
            await self.channel_layer.group_add(thread_group(thread_id), self.channel_name)

    def _follow(self, run_id: str, after: int) -> None:
        self.current = run_id
        self.sent.setdefault(run_id, after)
        if self.paused or self.restarting or run_id in self.followers:
            return
        self.followers[run_id] = asyncio.create_task(self._pump(run_id, max(after, self.sent[run_id])))

    async def _pump(self, run_id: str, after: int) -> None:
        try:
            async for event in runs.run_subscribe(run_id, after):
                await self.send_json(seed_message(event))
                self.sent[run_id] = event["seq"]
                if is_terminal(event):
                    self.done.add(run_id)
        except runs.RunNotFound:
            await self.error("This reply's event log has expired; reload the conversation.", run_id=run_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("following run %s failed", run_id)
            await self.error("The stream failed unexpectedly; subscribe again to resume.", run_id=run_id)
        finally:
            if self.followers.get(run_id) is asyncio.current_task():
                del self.followers[run_id]

    async def thread_run(self, message: dict[str, Any]) -> None:
        """A run started in a watched thread (maybe by another tab): follow it."""
        run_id = message["run_id"]
        if run_id not in self.sent:
            await self.send_json(
                {
                    "type": "run", "run_id": run_id, "thread_id": message["thread_id"],
                    "message": message.get("message", ""),
                }
            )
            self._follow(run_id, 0)
