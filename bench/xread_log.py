"""The per-listener `XREAD BLOCK` fan-out, kept for comparison with the product's Redis
pub/sub fan-out (bench/fanout.py, docs/benchmarks.md). Serve with
`STREAM_LOG_BACKEND=bench.xread_log.XreadEventLog` (every worker alike).

Nothing is published: each listener has its own task looping `XREAD BLOCK` on the run's
stream from its top as of subscribing, holding one Redis connection (from a separate,
unbounded pool) while it waits.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from streaming.logs.base import Inbox, listening
from streaming.logs.redis import RedisEventLog, _key

logger = logging.getLogger(__name__)

XREAD_BLOCK_MS = 1000


class XreadEventLog(RedisEventLog):
    publishes = False

    def __init__(self, url: str, *, retention: float, max_events: int) -> None:
        super().__init__(url, retention=retention, max_events=max_events)
        # Blocking reads each hold a connection, so they get their own pool.
        self.readers = aioredis.Redis.from_url(url, max_connections=10_000)
        self.xread_tasks: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def listen(self, run_id: str) -> AsyncIterator[Inbox]:
        key = _key("log", run_id)
        async with listening(self.listeners, run_id) as inbox:
            # Start at the top as of now: anything later is read live, the rest is backlog.
            top = await self.readers.xrevrange(key, count=1)
            last_id = top[0][0] if top else b"0-0"
            stopped = asyncio.Event()
            task = asyncio.create_task(
                self._xread_loop(key, last_id, inbox, stopped), name=f"redis-xread-{run_id}"
            )
            self.xread_tasks.add(task)
            task.add_done_callback(self.xread_tasks.discard)
            try:
                yield inbox
            finally:
                # Not awaited: on Python 3.11 a cancel that lands while redis-py sends a
                # command can be swallowed (asyncio.wait_for), and the read then blocks for
                # up to XREAD_BLOCK_MS; the loop sees `stopped` and ends by itself.
                stopped.set()
                task.cancel()

    async def _xread_loop(
        self, key: str, last_id: bytes, inbox: Inbox, stopped: asyncio.Event
    ) -> None:
        while not stopped.is_set():
            try:
                result = await self.readers.xread({key: last_id}, block=XREAD_BLOCK_MS)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, RuntimeError) as exc:
                logger.warning("xread fan-out for %s failed (%s); retrying", key, exc)
                await asyncio.sleep(0.5)
                continue
            for _, rows in result or ():
                if rows:
                    last_id = rows[-1][0]
                    inbox.deliver([json.loads(fields[b"e"]) for _, fields in rows])

    async def close(self) -> None:
        await super().close()
        for task in list(self.xread_tasks):
            task.cancel()
        if self.xread_tasks:
            await asyncio.wait(self.xread_tasks, timeout=XREAD_BLOCK_MS / 1000 + 1)
        await self.readers.aclose()
