"""Event-log backends: the replayable log, live delivery, retention, and the run registry,
for the in-process memory log and the Redis log alike."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from streaming import events
from streaming.events import Event, Metrics
from streaming.logs.base import Inbox, RunEnded
from streaming.logs.memory import MemoryEventLog
from streaming.logs.redis import RedisEventLog, _key

TEXT = "héllo 世界 🎉"
METRICS: Metrics = {
    "ttft_seconds": 0.25, "token_count": 3, "duration_seconds": 1.5, "tokens_per_second": 2.0,
}


def new_id() -> str:
    return uuid.uuid4().hex


def run_events(run_id: str, parts: list[str], *, end: bool = True) -> list[Event]:
    """A run's log: `started`, one delta per part, then `completed` if `end`."""
    log = [events.started(run_id, 1, thread_id="t-1", model="gpt-test")]
    for index, part in enumerate(parts, start=1):
        log.append(events.delta(run_id, index + 1, text=part, tokens=1, token_count=index))
    if end:
        log.append(events.terminal(run_id, len(log) + 1, type="completed", values=METRICS))
    return log


def deltas(run_id: str, first_seq: int, count: int) -> list[Event]:
    return [
        events.delta(run_id, seq, text=f"t{seq} ", tokens=1, token_count=seq)
        for seq in range(first_seq, first_seq + count)
    ]


def seqs(batch: list[Event]) -> list[int]:
    return [event["seq"] for event in batch]


class Logs:
    """Makes event logs of one backend for a test; closes them (and removes the Redis keys
    of the test's runs and workers) afterwards."""

    def __init__(self, backend: str, redis_url: str | None) -> None:
        self.backend = backend
        self.redis_url = redis_url
        self.made: list[MemoryEventLog | RedisEventLog] = []
        self.names: list[str] = []

    def make(
        self, *, retention: float = 600, max_events: int = 10_000
    ) -> MemoryEventLog | RedisEventLog:
        log: MemoryEventLog | RedisEventLog
        if self.backend == "memory":
            log = MemoryEventLog(retention=retention, max_events=max_events)
        else:
            assert self.redis_url is not None
            log = RedisEventLog(self.redis_url, retention=retention, max_events=max_events)
        self.made.append(log)
        return log

    def name(self) -> str:
        """A fresh run id (or worker id), unique in the shared Redis."""
        name = new_id()
        self.names.append(name)
        return name

    async def close(self) -> None:
        for log in self.made:
            if isinstance(log, RedisEventLog) and self.names and log is self.made[0]:
                kinds = ("log", "stop", "reap", "worker")
                await log.redis.delete(*[_key(k, n) for k in kinds for n in self.names])
                await log.redis.delete(*[_key("log", n) + ":end" for n in self.names])
                await log.redis.hdel(_key("active", "runs"), *self.names)
            await log.close()


@pytest.fixture(params=["memory", "redis"])
async def logs(request: pytest.FixtureRequest) -> AsyncIterator[Logs]:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    made = Logs(request.param, url)
    yield made
    await made.close()


async def drain(inbox: Inbox, wait: float) -> list[list[Event]]:
    """Every batch that reaches `inbox` until it has been quiet for `wait` seconds."""
    batches = []
    while (batch := await inbox.get(wait=wait)) is not None:
        batches.append(batch)
    return batches


# The log.


async def test_read_returns_exactly_the_events_after_a_sequence_number_in_order(logs) -> None:
    log = logs.make()
    run = logs.name()
    logged = run_events(run, ["héllo", " 世界", " 🎉"])
    await log.append(run, logged[:2])
    await log.append(run, logged[2:4])
    await log.append(run, logged[4:], final=True)
    for after in range(len(logged) + 2):
        assert await log.read(run, after) == logged[after:]
    assert events.text_of(await log.read(run, 0)) == TEXT


async def test_last_is_the_newest_logged_event_or_none_without_a_log(logs) -> None:
    log = logs.make()
    run = logs.name()
    logged = run_events(run, [TEXT])
    assert await log.last(run) is None
    await log.append(run, logged[:2])
    assert await log.last(run) == logged[1]
    await log.append(run, logged[2:], final=True)
    assert await log.last(run) == logged[2]


async def test_a_run_exists_only_once_something_is_appended(logs) -> None:
    log = logs.make()
    run = logs.name()
    assert await log.exists(run) is False
    assert await log.read(run, 0) == []
    await log.append(run, run_events(run, [], end=False))
    assert await log.exists(run) is True
    assert await log.exists(logs.name()) is False


async def test_appending_the_same_events_again_does_not_duplicate_them(logs) -> None:
    log = logs.make()
    run = logs.name()
    logged = run_events(run, ["a", "b", "c"])
    await log.append(run, logged[:3])
    await log.append(run, logged[1:3])  # a retry of part of the batch
    await log.append(run, logged[2:4])  # a retry overlapping a new event
    await log.append(run, logged[4:], final=True)
    assert await log.read(run, 0) == logged
    assert await log.read(run, 3) == logged[3:]


async def test_multi_byte_text_is_stored_and_read_back_unchanged(logs) -> None:
    log = logs.make()
    run = logs.name()
    logged = run_events(run, [TEXT, "ß\u200d👩‍💻", "\U0001f600\n\t\"'\\"])
    logged[-1]["error"] = "Ünïcödé error — 失敗"
    await log.append(run, logged, final=True)
    assert await log.read(run, 0) == logged


# Live delivery.


async def test_listen_delivers_each_appended_batch_to_every_listener_until_the_context_exits(
    logs,
) -> None:
    log = logs.make()
    run, other_run = logs.name(), logs.name()
    logged = run_events(run, ["héllo", " 世界", " 🎉"])
    await log.append(run, logged[:1])  # before anyone listens: not delivered
    async with log.listen(run) as first, log.listen(run) as second:
        await log.append(run, logged[1:3])
        await log.append(other_run, run_events(other_run, ["x"]))
        await log.append(run, logged[3:], final=True)
        for inbox in (first, second):
            assert await drain(inbox, wait=0.3) == [logged[1:3], logged[3:]]
    assert run not in log.listeners
    async with log.listen(run) as third:
        pass
    await log.append(other_run, deltas(other_run, 10, 2))
    await asyncio.sleep(0.2)
    for inbox in (first, second, third):
        assert not inbox.batches


async def test_a_final_append_that_finds_its_seq_taken_delivers_nothing(logs) -> None:
    """Two workers ending the same run (a slow producer and the reaper that took it for
    dead): listeners hear only the terminal event the log holds."""
    log = logs.make()
    run = logs.name()
    logged = run_events(run, ["a"], end=False)
    interrupted = events.terminal(run, 3, type="interrupted", values=METRICS, error="gone")
    completed = events.terminal(run, 3, type="completed", values=METRICS)
    await log.append(run, logged)
    async with log.listen(run) as inbox:
        await log.append(run, [interrupted], final=True)
        with pytest.raises(RunEnded):
            await log.append(run, [completed], final=True)
        assert await drain(inbox, wait=0.3) == [[interrupted]]
    assert await log.read(run, 0) == [*logged, interrupted]


async def test_listen_receives_batches_appended_through_another_redis_connection(
    redis_url: str,
) -> None:
    writer_logs, reader_logs = Logs("redis", redis_url), Logs("redis", redis_url)
    writer, reader = writer_logs.make(), reader_logs.make()
    run = writer_logs.name()
    logged = run_events(run, [TEXT])
    try:
        async with reader.listen(run) as inbox:
            await writer.append(run, logged[:2])
            await writer.append(run, logged[2:], final=True)
            assert await drain(inbox, wait=0.3) == [logged[:2], logged[2:]]
    finally:
        await writer_logs.close()
        await reader_logs.close()


# Retention and size.


async def test_an_ended_log_expires_after_its_retention_and_a_live_one_does_not(logs) -> None:
    log = logs.make(retention=1)
    ended, live = logs.name(), logs.name()
    await log.append(ended, run_events(ended, ["a"])[:2])
    await log.append(ended, run_events(ended, ["a"])[2:], final=True)
    await log.append(live, run_events(live, ["a"], end=False))
    assert await log.exists(ended) is True
    await asyncio.sleep(1.6)
    assert await log.exists(ended) is False
    assert await log.read(ended, 0) == []
    assert await log.exists(live) is True
    assert seqs(await log.read(live, 0)) == [1, 2]


async def test_redis_log_lives_a_day_while_running_and_retention_seconds_once_ended(
    redis_url: str,
) -> None:
    made = Logs("redis", redis_url)
    log = made.make(retention=30)
    run = made.name()
    try:
        await log.append(run, run_events(run, ["a"], end=False))
        assert 30 < await log.redis.ttl(_key("log", run)) <= 24 * 3600
        await log.append(run, run_events(run, ["a"])[2:], final=True)
        assert 0 < await log.redis.ttl(_key("log", run)) <= 30
    finally:
        await made.close()


async def test_memory_log_keeps_only_the_newest_max_events() -> None:
    log = MemoryEventLog(retention=600, max_events=10)
    run = new_id()
    for first in range(1, 1001, 7):
        await log.append(run, deltas(run, first, min(7, 1001 - first)))
    assert seqs(await log.read(run, 0)) == list(range(991, 1001))
    assert seqs(await log.read(run, 995)) == list(range(996, 1001))
    assert await log.read(run, 1000) == []


async def test_redis_log_length_stays_bounded_by_max_events(redis_url: str) -> None:
    made = Logs("redis", redis_url)
    log = made.make(max_events=10)
    run = made.name()
    try:
        for first in range(1, 1001, 7):
            await log.append(run, deltas(run, first, min(7, 1001 - first)))
        length = await log.redis.xlen(_key("log", run))
        assert 10 <= length <= 10 + 100
        kept = seqs(await log.read(run, 0))
        assert kept == list(range(1001 - length, 1001))
    finally:
        await made.close()


# The registry.


async def test_registry_holds_a_runs_meta_until_it_is_unregistered(logs) -> None:
    log = logs.make()
    run = logs.name()
    meta = {"worker": "w1", "owner": 7, "thread": "t-1", "cancel_on_disconnect": True}
    assert await log.meta(run) is None
    await log.register(run, meta)
    assert await log.meta(run) == meta
    await log.unregister(run)
    assert await log.meta(run) is None
    await log.unregister(run)  # a second unregister is harmless
    assert await log.meta(run) is None


async def test_a_stop_request_is_recorded_until_the_run_is_unregistered(logs) -> None:
    log = logs.make()
    run, other = logs.name(), logs.name()
    await log.register(run, {"worker": "w1"})
    await log.register(other, {"worker": "w1"})
    assert await log.stops_requested([run, other]) == set()
    await log.request_stop(run)
    assert await log.stops_requested([run, other]) == {run}
    assert await log.stops_requested([]) == set()
    await log.unregister(run)
    await log.unregister(other)
    assert await log.stops_requested([run, other]) == set()


async def test_watch_stops_calls_back_with_the_stopped_run_id(logs) -> None:
    log = logs.make()
    run, other = logs.name(), logs.name()
    heard: list[str] = []
    mine = asyncio.Event()

    def on_stop(run_id: str) -> None:
        if run_id in (run, other):  # the shared Redis may carry others' stop requests
            heard.append(run_id)
            if run_id == run:
                mine.set()

    await log.watch_stops(on_stop)
    await log.register(run, {"worker": "w1"})
    await log.request_stop(run)
    async with asyncio.timeout(5):
        await mine.wait()
    assert heard == [run]
    await log.unregister(run)


async def test_a_stop_requested_from_another_worker_reaches_the_watcher(redis_url: str) -> None:
    made = Logs("redis", redis_url)
    watcher, requester = made.make(), made.make()
    run = made.name()
    heard = asyncio.Event()
    await watcher.watch_stops(lambda run_id: heard.set() if run_id == run else None)
    try:
        await requester.register(run, {"worker": "w1"})
        await requester.request_stop(run)
        async with asyncio.timeout(5):
            await heard.wait()
        assert await watcher.stops_requested([run]) == {run}
        await requester.unregister(run)
    finally:
        await made.close()


async def test_a_run_is_orphaned_exactly_while_its_worker_has_no_live_heartbeat(
    redis_url: str,
) -> None:
    made = Logs("redis", redis_url)
    log = made.make()
    run, worker, live_worker = made.name(), made.name(), made.name()
    live_run = made.name()
    try:
        await log.heartbeat(worker, 0.5)
        await log.heartbeat(live_worker, 60)
        await log.register(run, {"worker": worker, "owner": 1})
        await log.register(live_run, {"worker": live_worker, "owner": 1})
        orphans = await log.orphaned_runs("observer")
        assert run not in orphans and live_run not in orphans
        await asyncio.sleep(0.75)  # the 0.5 s heartbeat lapses
        orphans = await log.orphaned_runs("observer")
        assert run in orphans and live_run not in orphans
        await log.heartbeat(worker, 60)  # the worker is back
        assert run not in await log.orphaned_runs("observer")
        await log.unregister(run)
        await log.redis.delete(_key("worker", worker))
        assert run not in await log.orphaned_runs("observer")  # an unregistered run is never orphaned
    finally:
        await made.close()


async def test_the_memory_log_reports_every_registered_run_as_its_callers_own() -> None:
    log = MemoryEventLog(retention=600, max_events=100)
    run = new_id()
    await log.register(run, {"worker": "w1"})
    assert await log.orphaned_runs("w1") == [run]
    await log.unregister(run)
    assert await log.orphaned_runs("w1") == []


async def test_a_runs_own_worker_is_told_about_its_registered_runs(redis_url: str) -> None:
    made = Logs("redis", redis_url)
    log = made.make()
    run, other, worker = made.name(), made.name(), made.name()
    try:
        await log.heartbeat(worker, 60)
        await log.register(run, {"worker": worker, "owner": 1})
        assert run not in await log.orphaned_runs(made.name())  # alive, and someone else's
        assert run in await log.orphaned_runs(worker)  # the caller knows whether it produces it
        assert other not in await log.orphaned_runs(worker)
        await log.unregister(run)
    finally:
        await made.close()


async def test_only_one_party_seals_a_run_and_the_seal_holds_for_it(logs) -> None:
    log = logs.make()
    run = logs.name()
    assert await log.seal(run, "producer", 60) is True
    assert await log.seal(run, "reaper", 60) is False
    assert await log.seal(run, "producer", 60) is True  # asked again: still its own
    assert await log.seal(logs.name(), "reaper", 60) is True


async def test_a_sealed_run_takes_only_its_sealers_terminal_event_then_nothing(logs) -> None:
    """The reaper sealed the run of a producer that was only slow: the producer's late text
    and terminal event are refused, the reaper's end is logged, and nothing after it."""
    log = logs.make()
    run = logs.name()
    logged = run_events(run, ["a"], end=False)
    await log.append(run, logged)
    assert await log.seal(run, "reaper", 60)
    interrupted = events.terminal(run, 3, type="interrupted", values=METRICS, error="gone")
    async with log.listen(run) as inbox:
        late = [
            (deltas(run, 3, 2), ""),  # the producer's late text
            ([events.terminal(run, 3, type="completed", values=METRICS)], "producer"),
        ]
        for batch, who in late:
            with pytest.raises(RunEnded):
                await log.append(run, batch, final=bool(who), sealed_by=who)
        await log.append(run, [interrupted], final=True, sealed_by="reaper")
        for batch, who in [
            (deltas(run, 4, 1), ""),
            ([events.terminal(run, 4, type="completed", values=METRICS)], "reaper"),
        ]:
            with pytest.raises(RunEnded):
                await log.append(run, batch, final=bool(who), sealed_by=who)
        assert await drain(inbox, wait=0.3) == [[interrupted]]
    assert await log.read(run, 0) == [*logged, interrupted]
    assert await log.seal(run, "someone", 60) is False


async def test_nothing_is_logged_after_a_terminal_event(logs) -> None:
    log = logs.make()
    run = logs.name()
    logged = run_events(run, ["a", "b"])
    await log.append(run, logged[:-1])
    await log.append(run, logged[-1:], final=True)
    for late in (deltas(run, 5, 3), [events.metrics(run, 5, values=METRICS)]):
        with pytest.raises(RunEnded):
            await log.append(run, late)
    assert await log.read(run, 0) == logged


async def test_a_seal_lapses_when_its_sealer_never_ends_the_run(redis_url: str) -> None:
    made = Logs("redis", redis_url)
    log = made.make()
    run = made.name()
    try:
        assert await log.seal(run, "producer", 0.3) is True
        assert await log.seal(run, "reaper", 60) is False
        await asyncio.sleep(0.5)
        assert await log.seal(run, "reaper", 60) is True
    finally:
        await made.close()


async def test_the_backend_is_chosen_by_a_dotted_path(settings, redis_url) -> None:
    from bench.xread_log import XreadEventLog
    from streaming.logs import close_event_logs, event_log, run_registry

    settings.REDIS_URL = None
    settings.STREAM_LOG_BACKEND = ""
    assert isinstance(event_log(), MemoryEventLog) and event_log() is run_registry()
    settings.REDIS_URL = redis_url
    assert type(event_log()) is RedisEventLog
    settings.STREAM_LOG_BACKEND = "bench.xread_log.XreadEventLog"
    log = event_log()
    assert isinstance(log, XreadEventLog) and log is run_registry()
    # It is a working log: a listener hears an append through XREAD, not pub/sub.
    run_id = new_id()
    try:
        async with log.listen(run_id) as inbox:
            await log.append(run_id, run_events(run_id, ["a"], end=False))
            batch = await inbox.get(wait=5)
        assert batch is not None and seqs(batch)[0] == 1
    finally:
        await log.redis.delete(_key("log", run_id))
        await close_event_logs()


async def test_a_run_produced_here_is_heard_from_its_appends_without_a_subscription(redis_url) -> None:
    logs = Logs("redis", redis_url)
    log = logs.make()
    run = logs.name()
    logged = run_events(run, [TEXT, "more"])
    try:
        await log.append(run, logged[:1])  # this process produces the run
        async with log.listen(run) as inbox:
            assert _key("run", run) not in log.subscriptions  # no channel for it
            await log.append(run, logged[1:3])
            await log.append(run, logged[1:3])  # a retry: nothing new to hear
            await log.append(run, logged[3:], final=True)
            heard = await drain(inbox, wait=0.3)
        assert heard == [logged[1:3], logged[3:]]
        # Each event heard carries the bytes the log holds: sent on without encoding again.
        rows = await log.redis.xrange(_key("log", run))
        assert [e.raw for batch in heard for e in batch] == [f[b"e"] for _, f in rows[1:]]
    finally:
        await logs.close()


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_thread_notices_reach_the_watchers_of_that_thread_only(backend, redis_url) -> None:
    writer_logs, reader_logs = Logs(backend, redis_url), Logs(backend, redis_url)
    writer = writer_logs.make()
    reader = writer if backend == "memory" else reader_logs.make()  # another worker's
    thread, other = new_id(), new_id()
    heard: list[dict] = []
    elsewhere: list[dict] = []
    try:
        await reader.watch_thread(thread, heard.append)
        await reader.watch_thread(other, elsewhere.append)
        await writer.announce(thread, {"type": "run", "run_id": "r1"})
        for _ in range(100):
            if heard:
                break
            await asyncio.sleep(0.01)
        assert heard == [{"type": "run", "run_id": "r1"}] and elsewhere == []
        await reader.unwatch_thread(thread, heard.append)
        await writer.announce(thread, {"type": "run", "run_id": "r2"})
        await asyncio.sleep(0.2)
        assert heard == [{"type": "run", "run_id": "r1"}]
    finally:
        await writer_logs.close()
        await reader_logs.close()


async def test_an_append_with_a_gap_in_its_seqs_logs_each_event_under_its_own_seq(logs) -> None:
    log = logs.make()
    run = logs.name()
    logged = run_events(run, ["a", "b", "c", "d"], end=False)
    await log.append(run, [logged[0], logged[1], logged[3]])
    await log.append(run, [logged[3], logged[4]])
    assert seqs(await log.read(run, 0)) == [1, 2, 4, 5]


async def test_a_batch_redis_could_not_take_goes_first_with_the_runs_next_append(redis_url, monkeypatch) -> None:
    """Redis away for longer than the appends are retried: the append fails (its producer
    hears so), and its events are kept, to be logged in order before the run's next ones:
    the log never skips a seq."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from streaming.logs import LogUnavailable
    from streaming.logs import redis as module

    monkeypatch.setattr(module, "WRITE_RETRY_SECONDS", 0.2)
    made = Logs("redis", redis_url)
    log = made.make()
    run = made.name()
    logged = run_events(run, ["a", "b", "c", "d"], end=False)
    real = log._append_all
    down = True

    async def flaky(batch):
        if down:
            raise RedisConnectionError("Connection refused")
        await real(batch)

    monkeypatch.setattr(log, "_append_all", flaky)
    try:
        with pytest.raises(LogUnavailable):
            await log.append(run, logged[:3])
        down = False
        await log.append(run, logged[3:])
        assert await log.read(run, 0) == logged
    finally:
        await made.close()
