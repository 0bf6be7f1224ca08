"""This worker's run manager: it keeps runs alive whoever disconnects, stops them when
asked from any worker, and does its share of the cluster's chores: heartbeats, reaping runs
whose worker died, and sweeping stale records.
"""

import asyncio
import contextlib
import contextvars
import logging
import os
import socket
import time
import uuid
import weakref
from collections.abc import Coroutine
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from . import events, metrics, services
from .logs import EventLog, LogUnavailable, RunEnded, RunRegistry, event_log, run_registry
from .models import Message
from .producer import INTERRUPTED_ERROR, SEAL_SECONDS, Producer, RunOptions
from .structured_logs import run_fields

logger = logging.getLogger(__name__)

START_RETRY_SECONDS = 5.0  # how long a start waits for an unreachable event log
TOUCH_SECONDS = 10.0  # live replies' updated_at is refreshed at least this often
STALE_SECONDS = 120.0  # a `streaming` message untouched this long has no live run


class RunManager:
    """This worker's runs, plus its share of the cluster's chores: heartbeats, stops
    requested elsewhere, reaping runs of dead workers, and sweeping stale records."""

    def __init__(self) -> None:
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.producers: dict[str, Producer] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.chores: asyncio.Task[None] | None = None
        self.beats: asyncio.Task[None] | None = None
        self.saver: asyncio.Task[None] | None = None
        self.log: EventLog | None = None
        self.registry: RunRegistry | None = None
        self.suspects: dict[str, float] = {}  # orphaned-looking run -> when first seen so

    async def ensure_started(self) -> None:
        if self.chores is not None and not self.chores.done():
            return
        self.log = event_log()
        self.registry = run_registry()
        await self.registry.watch_stops(self.stop_local)
        await self.registry.heartbeat(self.worker_id, settings.STREAM_WORKER_TTL)
        self.beats = detached_task(self._heartbeats(), name="run-manager-heartbeats")
        self.chores = detached_task(self._chores(), name="run-manager-chores")
        self.saver = detached_task(self._checkpoints(), name="run-manager-checkpoints")

    async def _checkpoints(self) -> None:
        """Save the text so far of every run of this worker that grew, in one UPDATE every
        `STREAM_CHECKPOINT_SECONDS` (the log holds the text already; this is what a reader
        of the database, or the admin, sees of a reply still streaming)."""
        while True:
            await asyncio.sleep(max(settings.STREAM_CHECKPOINT_SECONDS, 0.005))
            contents = {
                run_id: text for run_id, producer in self.producers.items()
                if (text := producer.checkpoint()) is not None
            }
            if not contents:
                continue
            try:
                await sync_to_async(services.replies_checkpoint)(contents=contents)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("checkpoints failed; retrying")
                continue
            for run_id in contents:
                if (producer := self.producers.get(run_id)) is not None:
                    producer.checkpointed()

    async def _heartbeats(self) -> None:
        """Say this worker is alive, on a task of its own so that busy chores never delay it."""
        while True:
            await asyncio.sleep(settings.STREAM_WORKER_TTL / 4)
            try:
                assert self.registry is not None
                await self.registry.heartbeat(self.worker_id, settings.STREAM_WORKER_TTL)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("heartbeat failed; retrying", exc_info=True)

    async def start(
        self, *, run_id: str, thread_id: str, owner_id: int, input: list[Any], options: RunOptions
    ) -> None:
        await self.ensure_started()
        assert self.log is not None and self.registry is not None
        meta = {
            "worker": self.worker_id, "owner": owner_id, "thread": thread_id,
            "cancel_on_disconnect": options.cancel_on_disconnect,
        }
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_RETRY_SECONDS
        while True:  # ride out a Redis restart (about a second)
            try:
                await self.registry.register(run_id, meta)
                break
            except LogUnavailable:
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(0.25)
        producer = Producer(
            run_id=run_id, thread_id=thread_id, input=input, options=options,
            log=self.log, registry=self.registry,
        )
        await producer.begin()
        self.producers[run_id] = producer
        metrics.run_producing(run_id, producer.progress.started)
        task = detached_task(producer.run(), name=f"run-{run_id}")
        self.tasks[run_id] = task
        task.add_done_callback(lambda _: self._forget(run_id))

    def _forget(self, run_id: str) -> None:
        self.producers.pop(run_id, None)
        self.tasks.pop(run_id, None)
        metrics.run_forgotten(run_id)

    def stop_local(self, run_id: str) -> bool:
        producer = self.producers.get(run_id)
        if producer is None:
            return False
        producer.stop()
        return True

    async def stop(self, run_id: str) -> None:
        """Stop a run on whichever worker is generating it."""
        await self.ensure_started()
        assert self.registry is not None
        if not self.stop_local(run_id):
            await self.registry.request_stop(run_id)

    async def _chores(self) -> None:
        interval = min(settings.STREAM_REAP_INTERVAL, settings.STREAM_WORKER_TTL / 3)
        last_touch = last_sweep = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            try:
                assert self.registry is not None
                for run_id in await self.registry.stops_requested(list(self.producers)):
                    self.stop_local(run_id)
                await self._reap_orphans()
                now = time.monotonic()
                if now - last_touch >= TOUCH_SECONDS and self.producers:
                    last_touch = now
                    await sync_to_async(services.replies_touch)(message_ids=list(self.producers))
                if now - last_sweep >= STALE_SECONDS / 4:
                    last_sweep = now
                    await sync_to_async(services.replies_sweep_stale)(
                        older_than=STALE_SECONDS, keep=list(self.producers),
                        error=INTERRUPTED_ERROR,
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("run manager chores failed; retrying")

    async def _reap_orphans(self) -> None:
        """Reap runs that have lost their producer: those of a worker silent for a further
        heartbeat TTL (a worker that is only slow gets that long to speak again), and this
        worker's own runs that it does not produce (a start interrupted between
        registering the run and starting its producer)."""
        assert self.log is not None and self.registry is not None
        now = time.monotonic()
        orphans = set(await self.registry.orphaned_runs(self.worker_id)) - set(self.producers)
        self.suspects = {run: self.suspects.get(run, now) for run in orphans}
        for run_id, since in list(self.suspects.items()):
            if now - since >= settings.STREAM_WORKER_TTL:
                del self.suspects[run_id]
                await run_reap(run_id, log=self.log, registry=self.registry, who=f"reaper:{self.worker_id}")

    async def shutdown(self) -> None:
        """Cancel this worker's runs (each ends `interrupted`) and its chores."""
        for task in list(self.tasks.values()):
            task.cancel()
        for task in list(self.tasks.values()):
            with contextlib.suppress(BaseException):
                await task
        for chore in (self.chores, self.beats, self.saver):
            if chore is not None:
                chore.cancel()
                with contextlib.suppress(BaseException):
                    await chore


async def run_reap(run_id: str, *, log: EventLog, registry: RunRegistry, who: str) -> None:
    """End a run that has lost its producer: `interrupted`, with the text its log holds.

    The run is sealed first, so its log takes nothing more (a producer that was only slow
    cannot add text or a terminal event of its own), and the text read afterwards is final.
    If the database has its end already (its producer stored it, then died before logging
    it), the terminal event logged is that end."""
    if not await log.seal(run_id, who, SEAL_SECONDS):
        return  # another worker, or the run's own producer, is ending it
    logged = await log.read(run_id, 0)
    if logged and events.is_terminal(logged[-1]):
        await registry.unregister(run_id)
        return
    values = events.metrics_of(logged)
    ending = await sync_to_async(services.reply_finish)(
        message_id=run_id, content=events.text_of(logged), steps=events.steps_of(logged),
        status=Message.Status.INTERRUPTED,
        metrics=values, error=INTERRUPTED_ERROR,
    )
    seq = logged[-1]["seq"] + 1 if logged else 1
    terminal = events.terminal(
        run_id, seq, type=ending.status, values=ending.metrics, error=ending.error  # type: ignore[arg-type]
    )
    with contextlib.suppress(RunEnded):  # the seal lapsed and another worker ended it
        await log.append(run_id, [terminal], final=True, sealed_by=who)
    await registry.unregister(run_id)
    metrics.REAPED.inc()
    metrics.run_ended(ending.status)
    logger.warning(
        "run %s: its producer is gone; ended %s", run_id, ending.status, extra=run_fields(run_id)
    )


def detached_task(coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
    """A task that outlives the request that started it. It starts from an empty context:
    a request's context carries asgiref's executor for that request, which is gone once
    the request ends, and database calls made through it would fail."""
    return asyncio.create_task(coro, name=name, context=contextvars.Context())


_managers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RunManager]" = (
    weakref.WeakKeyDictionary()
)


def run_manager() -> RunManager:
    """This worker's run manager (one per event loop)."""
    loop = asyncio.get_running_loop()
    manager = _managers.get(loop)
    if manager is None:
        manager = _managers[loop] = RunManager()
    return manager
