"""Redis event log and run registry: Redis Streams hold each run's log, one pub/sub
connection per process fans new events out to that process's listeners, and a hash of
live runs plus expiring keys hold the registry, heartbeats, stops and the seals of runs
whose end is being decided.

Appending is group-committed: the appends of all the process's runs made while one round
trip is in flight go together in the next, one script call that does, per run, XADD per
event (the stream id is `<seq>-0`, so an event can never be written twice), PUBLISH of
what it added, and EXPIRE. Each event is encoded once, and its JSON is what subscribers
receive and what the native wire sends on (`events.Logged`). Pub/sub is
at-most-once: a listener that misses a message sees a gap in sequence numbers (or a quiet
spell) and reads the missing events back from the stream. (bench/xread_log.py keeps the
per-listener `XREAD BLOCK` alternative that docs/benchmarks.md compares this with.)
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..events import Event, Logged, decode_event, encode_event
from .base import Inbox, LogUnavailable, RunEnded, listening

logger = logging.getLogger(__name__)

PREFIX = "chat"
LIVE_TTL = 24 * 3600  # a live run's keys outlive any reply; reset to `retention` at the end
WRITE_RETRY_SECONDS = 15.0  # how long an append is retried while Redis is unreachable


def _key(kind: str, name: str) -> str:
    return f"{PREFIX}:{kind}:{name}"


STOP_CHANNEL = _key("control", "stop")
THREAD_PREFIX = _key("thread", "")
RECONNECT_RETRIES = 2


def _events(rows: Any) -> list[Event]:
    """The events of XRANGE / XREVRANGE rows (`[(id, {b"e": json})]`)."""
    return [decode_event(fields[b"e"]) for _, fields in rows or ()]


@dataclass
class _Append:
    run_id: str
    events: list[Event]
    final: bool
    future: "asyncio.Future[None]"
    sealed_by: str = ""
    refused: bool = False  # the run's end is decided elsewhere
    logged: list[Event] = field(default_factory=list)  # the events with their JSON


# KEYS: the runs' log keys (a key may come more than once). ARGV: maxlen, the live TTL, the
# retention, whether to publish, the length of the log keys' prefix (`chat:log:`) and the
# channels' prefix (`chat:run:`); then
# per key: the seq of its first event (the events of one entry have consecutive seqs), the
# number of events (negative for a final append), who sealed the run ("" if nobody), and
# each event's JSON. An event's stream id is `<seq>-0`, so one at or below the stream's top
# is a retry of an event logged already: skipped, and not published again. A sealed run
# (`<log key>:end` exists: its end is decided) takes only its sealer's terminal event; once
# that, or any final append, is logged, the key says `ended` and the run takes nothing
# more: the log never holds text after its terminal event, nor two of them. The events
# added are published on the run's channel as one message, their JSON joined by newlines
# (JSON text never contains a raw newline). Returns, per key, a flag per event: 1 if added,
# 0 if logged already, -1 if refused because the run's end is decided.
APPEND_SCRIPT = r"""
local maxlen, live_ttl, retention = ARGV[1], ARGV[2], ARGV[3]
local publish = ARGV[4] == '1'
local prefix, channels = tonumber(ARGV[5]), ARGV[6]
local a = 7
local results = {}
for i, key in ipairs(KEYS) do
  local first, n, who = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), ARGV[a + 2]
  a = a + 3
  local final = n < 0
  if final then n = -n end
  local endkey = key .. ':end'
  local sealed = redis.call('GET', endkey)
  local added, flags = {}, {}
  if sealed and (not final or sealed ~= who) then
    for j = 1, n do
      flags[j] = -1
    end
    a = a + n
  else
    for j = 1, n do
      local data = ARGV[a]
      a = a + 1
      local id = string.format('%d-0', first + j - 1)
      local result = redis.pcall('XADD', key, 'MAXLEN', '~', maxlen, id, 'e', data)
      if type(result) == 'table' and result.err then
        if not string.find(result.err, 'equal or smaller', 1, true) then
          return redis.error_reply(result.err)
        end
        flags[j] = 0
      else
        added[#added + 1] = data
        flags[j] = 1
      end
    end
    redis.call('EXPIRE', key, final and retention or live_ttl)
    if final and #added > 0 then
      redis.call('SET', endkey, 'ended', 'EX', retention)
    end
  end
  results[i] = flags
  if publish and #added > 0 then
    redis.call('PUBLISH', channels .. string.sub(key, prefix + 1), table.concat(added, '\n'))
  end
end
return results
"""


LOG_PREFIX_LENGTH = len(_key("log", ""))


def _consecutive(events: list[Event]) -> list[tuple[int, list[Event]]]:
    """`events` cut where their seqs are not consecutive: (first seq, events) pieces."""
    pieces: list[tuple[int, list[Event]]] = []
    for event in events:
        if pieces and pieces[-1][0] + len(pieces[-1][1]) == event["seq"]:
            pieces[-1][1].append(event)
        else:
            pieces.append((event["seq"], [event]))
    return pieces


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisEventLog:
    per_process = False  # connections belong to one event loop
    publishes = True  # live delivery is pub/sub (a subclass may deliver otherwise)

    @classmethod
    def from_settings(cls) -> "RedisEventLog":
        return cls(
            settings.REDIS_URL,
            retention=settings.STREAM_RETENTION_SECONDS,
            max_events=settings.STREAM_MAX_EVENTS,
        )

    def __init__(self, url: str, *, retention: float, max_events: int) -> None:
        self.retention = int(retention)
        self.max_events = max_events
        # A command that meets a connection Redis has closed (it restarted) reconnects and
        # is sent again, instead of failing once for every pooled connection. Every command
        # here may be repeated: an append carries its stream ids, and a repeated publish
        # is a duplicate that subscribers drop by seq.
        retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), RECONNECT_RETRIES)
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=50, timeout=10, retry=retry
        )
        self.redis = aioredis.Redis(connection_pool=pool)
        # Appends go one round trip at a time (`_flush_loop`), on a connection of their own:
        # taking one from the pool for every round trip (its lock, its readiness check, a
        # syscall) costs more than packing the round trip's events.
        self.appender = aioredis.Redis(connection_pool=pool, single_connection_client=True)
        self.listeners: dict[str, set[Inbox]] = {}
        self.pubsub = self.redis.pubsub()
        self.confirmations: dict[str, asyncio.Future[None]] = {}
        self.subscriptions: dict[str, int] = {}
        self.on_stop: Callable[[str], None] | None = None
        self.thread_watchers: dict[str, set[Callable[[dict[str, Any]], None]]] = {}
        self.reader: asyncio.Task[None] | None = None
        self.subscribe_lock = asyncio.Lock()
        self.pending: list[_Append] = []
        self.unsent: dict[str, list[Event]] = {}  # a failed append's events, per run
        self.produced: set[str] = set()  # runs this process is generating
        self.flusher: asyncio.Task[None] | None = None
        self.append_script = self.appender.register_script(APPEND_SCRIPT)

    # The log.

    def append(
        self, run_id: str, events: list[Event], *, final: bool = False, sealed_by: str = ""
    ) -> "asyncio.Future[None]":
        """Queue the append for this process's next round trip to Redis."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if final:
            self.produced.discard(run_id)
        else:
            self.produced.add(run_id)
        unsent = self.unsent.pop(run_id, None)
        if unsent:  # events of the run whose append failed: they go first, in order
            events = unsent + events
        self.pending.append(_Append(run_id, events, final, future, sealed_by))
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.create_task(self._flush_loop(), name="redis-event-appends")
        return future

    async def _flush_loop(self) -> None:
        """Group commit: every append queued while the previous round trip was in flight
        goes in the next one, as one script call for all runs."""
        while self.pending:
            await asyncio.sleep(0)  # let appends made in this turn of the loop join
            batch, self.pending = self.pending, []
            await self._commit(batch)

    async def _commit(self, batch: "list[_Append]") -> None:
        """Log `batch`, retrying while Redis is unreachable (appends are idempotent), for up
        to `WRITE_RETRY_SECONDS`; then fail it, keeping its events to go first with their
        run's next append, so that a run's log never skips any."""
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + WRITE_RETRY_SECONDS, 0.1
        while True:
            try:
                await self._append_all(batch)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if loop.time() + delay <= deadline:
                    logger.warning("event log unreachable (%s); retrying", exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                self._fail(batch, LogUnavailable(str(exc)))
            except Exception as exc:
                self._fail(batch, exc)
            else:
                for append in batch:
                    self._deliver_locally(append)
                    if append.future.done():
                        continue
                    if append.refused:
                        append.future.set_exception(RunEnded(append.run_id))
                    else:
                        append.future.set_result(None)
            return

    def _fail(self, batch: "list[_Append]", error: BaseException) -> None:
        kept: dict[str, list[Event]] = {}
        for append in batch:
            if not append.final:
                kept.setdefault(append.run_id, []).extend(append.events)
            if not append.future.done():
                append.future.set_exception(error)
        for append in self.pending:  # queued meanwhile: after the failed events
            if append.run_id in kept:
                append.events = kept.pop(append.run_id) + append.events
        for run_id, events in kept.items():
            self.unsent[run_id] = events + self.unsent.get(run_id, [])

    def _deliver_locally(self, append: "_Append") -> None:
        """This process's listeners of a run it produces hear its events from the append
        itself, once logged (they do not subscribe to the run's channel: `listen`)."""
        if not append.logged:
            return
        for inbox in self.listeners.get(append.run_id, ()):
            if inbox.local:
                inbox.deliver(append.logged)

    async def _append_all(self, batch: "list[_Append]") -> None:
        """One script call (`APPEND_SCRIPT`): XADD each event (its id is `<seq>-0`, so a
        retried append adds nothing), PUBLISH what was added, EXPIRE; for every run. The
        arguments are few per event (its JSON; the rest per run), since packing them is
        a cost per token."""
        keys: list[str] = []
        args: list[str | bytes | int] = [
            self.max_events, LIVE_TTL, self.retention, 1 if self.publishes else 0,
            LOG_PREFIX_LENGTH, _key("run", ""),
        ]
        entries: list[tuple[_Append, int]] = []  # (append, its number of events) per key
        for append in batch:
            key = _key("log", append.run_id)
            append.logged = []
            for first, events in _consecutive(append.events):
                keys.append(key)
                args += [first, -len(events) if append.final else len(events), append.sealed_by]
                entries.append((append, len(events)))
                for event in events:
                    raw = encode_event(event)
                    args.append(raw)
                    logged = Logged(event)
                    logged.raw = raw
                    append.logged.append(logged)  # type: ignore[arg-type]
        added = await self.append_script(keys=keys, args=args)
        flags_of: dict[int, list[int]] = {}
        for (append, _), flags in zip(entries, added, strict=True):
            flags_of.setdefault(id(append), []).extend(flags)
        for append in batch:
            flags = flags_of.get(id(append), [])
            append.logged = [e for e, flag in zip(append.logged, flags, strict=True) if flag == 1]
            append.refused = -1 in flags

    async def seal(self, run_id: str, who: str, ttl: float) -> bool:
        try:
            key = _key("log", run_id) + ":end"
            if await self.redis.set(key, who, nx=True, px=int(ttl * 1000)):
                return True
            return await self.redis.get(key) == who.encode()  # sealed by `who` already
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise LogUnavailable(str(exc)) from exc

    async def read(self, run_id: str, after_seq: int, *, limit: int | None = None) -> list[Event]:
        rows = await self.redis.xrange(_key("log", run_id), min=f"{after_seq + 1}-0", count=limit)
        return _events(rows)

    async def last(self, run_id: str) -> Event | None:
        rows = await self.redis.xrevrange(_key("log", run_id), count=1)
        found = _events(rows)
        return found[0] if found else None

    async def exists(self, run_id: str) -> bool:
        return bool(await self.redis.exists(_key("log", run_id)))

    # Live delivery to this process's listeners.

    @contextlib.asynccontextmanager
    async def listen(self, run_id: str) -> AsyncIterator[Inbox]:
        """A run produced in this process is heard from its appends directly; any other
        through its pub/sub channel."""
        channel = _key("run", run_id)
        async with listening(self.listeners, run_id) as inbox:
            if run_id in self.produced:
                inbox.local = True
                yield inbox
                return
            await self._subscribe(channel)
            try:
                yield inbox
            finally:
                await self._unsubscribe(channel)

    async def watch_stops(self, callback: Callable[[str], None]) -> None:
        """Call `callback(run_id)` in this process for every stop requested anywhere."""
        self.on_stop = callback
        await self._subscribe(STOP_CHANNEL)

    async def _subscribe(self, channel: str) -> None:
        """Subscribe (once per process) and wait until Redis confirms, so that nothing
        published afterwards is missed."""
        async with self.subscribe_lock:
            if self.subscriptions.get(channel, 0) > 0:
                self.subscriptions[channel] += 1
                return
            confirmed = asyncio.get_running_loop().create_future()
            self.confirmations[channel] = confirmed
            try:
                await self.pubsub.subscribe(channel)
            except BaseException:
                # Redis is unreachable: count nothing, so that the next listener
                # subscribes again instead of assuming this one did.
                self.confirmations.pop(channel, None)
                raise
            self.subscriptions[channel] = 1
            if self.reader is None or self.reader.done():
                self.reader = asyncio.create_task(self._read_loop(), name="redis-event-fanout")
        try:
            await asyncio.wait_for(confirmed, 5)
        except TimeoutError:
            logger.warning("no subscribe confirmation for %s; relying on backfill", channel)
        finally:
            self.confirmations.pop(channel, None)

    async def _unsubscribe(self, channel: str) -> None:
        async with self.subscribe_lock:
            self.subscriptions[channel] -= 1
            if self.subscriptions[channel] > 0:
                return
            del self.subscriptions[channel]
            with contextlib.suppress(RedisError, OSError, RuntimeError):
                await self.pubsub.unsubscribe(channel)

    async def _read_loop(self) -> None:
        """The process's one pub/sub reader: dispatch each message to local inboxes."""
        prefix = len(_key("run", ""))
        while True:
            try:
                message = await self.pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, RuntimeError) as exc:
                logger.warning("event fan-out connection lost (%s); reconnecting", exc)
                await asyncio.sleep(0.5)
                continue
            except Exception:
                # Whatever else a broken connection raises, this process's only reader
                # keeps going: redis-py reconnects and re-subscribes on the next read.
                logger.exception("event fan-out read failed; reconnecting")
                await asyncio.sleep(0.5)
                continue
            if message is None:
                continue
            try:
                self._dispatch(message, prefix)
            except Exception:
                logger.exception("event fan-out could not dispatch a message")

    def _dispatch(self, message: dict[str, Any], prefix: int) -> None:
        channel = message["channel"].decode()
        if message["type"] == "subscribe":
            confirmed = self.confirmations.get(channel)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)
        elif message["type"] != "message":
            return
        elif channel == STOP_CHANNEL:
            if self.on_stop is not None:
                self.on_stop(message["data"].decode())
        elif channel.startswith(THREAD_PREFIX):
            notice = json.loads(message["data"])
            for callback in list(self.thread_watchers.get(channel[len(THREAD_PREFIX):], ())):
                callback(notice)
        else:
            inboxes = self.listeners.get(channel[prefix:])
            if inboxes:
                batch = [decode_event(raw) for raw in message["data"].split(b"\n")]
                for inbox in inboxes:
                    inbox.deliver(batch)

    # The registry of live runs, heartbeats and stops.

    async def register(self, run_id: str, meta: dict[str, Any]) -> None:
        try:
            await self.redis.hset(_key("active", "runs"), run_id, json.dumps(meta))
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise LogUnavailable(str(exc)) from exc

    async def unregister(self, run_id: str) -> None:
        self.produced.discard(run_id)  # also when its final append never made it
        pipe = self.redis.pipeline(transaction=False)
        pipe.hdel(_key("active", "runs"), run_id)
        pipe.delete(_key("stop", run_id))
        await pipe.execute()

    async def meta(self, run_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(_key("active", "runs"), run_id)
        return None if raw is None else json.loads(raw)

    async def request_stop(self, run_id: str) -> None:
        await self.redis.set(_key("stop", run_id), 1, ex=LIVE_TTL)
        await self.redis.publish(STOP_CHANNEL, run_id)

    async def stops_requested(self, run_ids: list[str]) -> set[str]:
        if not run_ids:
            return set()
        flags = await self.redis.mget([_key("stop", run_id) for run_id in run_ids])
        return {run_id for run_id, flag in zip(run_ids, flags, strict=True) if flag is not None}

    async def heartbeat(self, worker_id: str, ttl: float) -> None:
        await self.redis.set(_key("worker", worker_id), 1, px=int(ttl * 1000))

    async def orphaned_runs(self, worker_id: str) -> list[str]:
        active = await self.redis.hgetall(_key("active", "runs"))
        if not active:
            return []
        workers = {_text(run): json.loads(raw)["worker"] for run, raw in active.items()}
        names = sorted(set(workers.values()) - {worker_id})
        alive = await self.redis.mget([_key("worker", w) for w in names]) if names else []
        dead = {w for w, flag in zip(names, alive, strict=True) if flag is None} | {worker_id}
        return [run for run, worker in workers.items() if worker in dead]

    # Notices to the connections watching a thread.

    async def announce(self, thread_id: str, message: dict[str, Any]) -> None:
        await self.redis.publish(THREAD_PREFIX + thread_id, json.dumps(message))

    async def watch_thread(self, thread_id: str, callback: Callable[[dict[str, Any]], None]) -> None:
        self.thread_watchers.setdefault(thread_id, set()).add(callback)
        try:
            await self._subscribe(THREAD_PREFIX + thread_id)
        except BaseException:
            self._forget_watcher(thread_id, callback)
            raise

    async def unwatch_thread(self, thread_id: str, callback: Callable[[dict[str, Any]], None]) -> None:
        if self._forget_watcher(thread_id, callback):
            await self._unsubscribe(THREAD_PREFIX + thread_id)

    def _forget_watcher(self, thread_id: str, callback: Callable[[dict[str, Any]], None]) -> bool:
        watchers = self.thread_watchers.get(thread_id)
        if watchers is None or callback not in watchers:
            return False
        watchers.discard(callback)
        if not watchers:
            del self.thread_watchers[thread_id]
        return True

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(BaseException):
                await self.reader
        with contextlib.suppress(RedisError, RuntimeError):
            await self.pubsub.aclose()
        await self.appender.aclose()
        await self.redis.aclose()
