"""`subscribe()`: backlog then live events, each exactly once and in order, until the
terminal event, whatever live delivery drops, repeats or delays; on both backends."""

import asyncio
import json
import random
from collections.abc import AsyncIterator

import pytest

from streaming.events import Event, text_of
from streaming.logs.memory import MemoryEventLog
from streaming.logs.redis import RedisEventLog, _key
from streaming.subscribe import RunNotFound, subscribe
from tests.test_event_log import Logs, run_events

LONG_IDLE = 30.0  # seconds: far beyond each test's bound, so only live delivery can pass it
SHORT_IDLE = 0.2
BOUND = 10.0  # seconds: a correctness bound (a hung subscriber fails), not a speed check


@pytest.fixture(params=["memory", "redis"])
async def logs(request: pytest.FixtureRequest, settings) -> AsyncIterator[Logs]:
    settings.STREAM_IDLE_CHECK_SECONDS = LONG_IDLE
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    made = Logs(request.param, url)
    yield made
    await made.close()


async def write_silently(log: MemoryEventLog | RedisEventLog, run_id: str, batch: list[Event]) -> None:
    """Log events without delivering them to any listener: live delivery lost them."""
    if isinstance(log, MemoryEventLog):
        log.logs[run_id].events.extend(batch)
        return
    for event in batch:
        await log.redis.xadd(
            _key("log", run_id), {"e": json.dumps(event, ensure_ascii=False)},
            id=f"{event['seq']}-0",
        )


async def collect(run_id: str, after_seq: int, log: MemoryEventLog | RedisEventLog) -> list[Event]:
    return [event async for event in subscribe(run_id, after_seq, log=log)]


async def test_backlog_then_live_events_are_yielded_in_order_until_the_terminal_event(
    logs: Logs,
) -> None:
    log = logs.make()
    run = logs.name()
    logged = run_events(run, ["héllo", " 世界", " 🎉", "!"])  # seqs 1..6
    await log.append(run, logged[:3])
    stream = subscribe(run, 0, log=log)
    async with asyncio.timeout(BOUND):
        got = [await anext(stream) for _ in range(3)]
        assert got == logged[:3]
        await log.append(run, logged[3:5])
        await log.append(run, logged[5:], final=True)
        got += [event async for event in stream]
    assert got == logged
    assert text_of(got) == "héllo 世界 🎉!"
    assert run not in log.listeners  # the iterator has ended and stopped listening


async def test_after_seq_skips_exactly_the_events_already_seen(logs: Logs) -> None:
    log = logs.make()
    run = logs.name()
    logged = run_events(run, ["héllo", " 世界", " 🎉", "!"])
    await log.append(run, logged[:4])
    await log.append(run, logged[4:], final=True)
    async with asyncio.timeout(BOUND):
        for after in range(len(logged)):
            assert await collect(run, after, log) == logged[after:]


async def test_an_unknown_run_raises_run_not_found(logs: Logs) -> None:
    log = logs.make()
    run = logs.name()
    with pytest.raises(RunNotFound):
        await collect(run, 0, log)
    assert run not in log.listeners


async def test_a_batch_delivered_twice_is_yielded_once(logs: Logs) -> None:
    log = logs.make()
    run = logs.name()
    logged = run_events(run, ["héllo", " 世界 🎉"])  # seqs 1..4
    await log.append(run, logged[:1])
    stream = subscribe(run, 0, log=log)
    async with asyncio.timeout(BOUND):
        got = [await anext(stream)]
        await log.append(run, logged[1:3])
        for inbox in list(log.listeners[run]):
            inbox.deliver(logged[1:3])  # the same batch again
        await log.append(run, logged[3:], final=True)
        got += [event async for event in stream]
    assert got == logged


async def test_gap_in_live_delivery_is_backfilled_from_the_log(logs: Logs) -> None:
    log = logs.make()
    run = logs.name()
    logged = run_events(run, ["héllo", " 世界", " 🎉", "!"])  # seqs 1..6
    await log.append(run, logged[:1])
    stream = subscribe(run, 0, log=log)
    async with asyncio.timeout(BOUND):
        got = [await anext(stream)]
        await write_silently(log, run, logged[1:3])  # seqs 2, 3: never delivered live
        await log.append(run, logged[3:5])  # seqs 4, 5 arrive after a gap
        await log.append(run, logged[5:], final=True)
        got += [event async for event in stream]
    assert got == logged


async def test_a_subscriber_that_hears_nothing_ends_after_the_idle_re_read(
    logs: Logs, settings
) -> None:
    settings.STREAM_IDLE_CHECK_SECONDS = SHORT_IDLE
    log = logs.make()
    run = logs.name()
    logged = run_events(run, ["héllo 世界 🎉"])  # seqs 1..3
    await log.append(run, logged[:1])
    stream = subscribe(run, 0, log=log)
    async with asyncio.timeout(BOUND):
        got = [await anext(stream)]
        await write_silently(log, run, logged[1:])  # the terminal event too
        got += [event async for event in stream]
    assert got == logged


async def test_a_subscriber_whose_log_disappears_raises_run_not_found(logs: Logs, settings) -> None:
    settings.STREAM_IDLE_CHECK_SECONDS = SHORT_IDLE
    log = logs.make()
    run = logs.name()
    await log.append(run, run_events(run, ["a"], end=False))
    stream = subscribe(run, 0, log=log)
    async with asyncio.timeout(BOUND):
        assert [(await anext(stream))["seq"] for _ in range(2)] == [1, 2]
        if isinstance(log, MemoryEventLog):
            del log.logs[run]
        else:
            await log.redis.delete(_key("log", run))
        with pytest.raises(RunNotFound):
            await anext(stream)


async def test_concurrent_subscribers_each_see_exactly_their_suffix(logs: Logs, settings) -> None:
    settings.STREAM_IDLE_CHECK_SECONDS = SHORT_IDLE
    log = logs.make()
    run = logs.name()
    logged = run_events(run, [f"{n} héllo 世界 🎉 " for n in range(38)])  # seqs 1..40
    rng = random.Random(20240601)
    afters = [rng.randrange(len(logged)) for _ in range(30)]
    await log.append(run, logged[:5])
    tasks = [asyncio.create_task(collect(run, after, log)) for after in afters]
    for start in range(5, len(logged) - 1, 4):
        await log.append(run, logged[start : min(start + 4, len(logged) - 1)])
        await asyncio.sleep(0.01)
    await log.append(run, logged[-1:], final=True)
    async with asyncio.timeout(BOUND):
        results = await asyncio.gather(*tasks)
    for after, got in zip(afters, results, strict=True):
        assert got == logged[after:], after
    assert run not in log.listeners


async def test_resuming_after_the_terminal_event_ends_without_yielding(logs: Logs) -> None:
    log = logs.make()
    run = logs.name()
    logged = run_events(run, ["héllo 世界 🎉"])  # seqs 1..3, 3 is `completed`
    await log.append(run, logged, final=True)
    async with asyncio.timeout(BOUND):  # LONG_IDLE: it must end without an idle re-read
        assert await collect(run, logged[-1]["seq"], log) == []
        assert await collect(run, logged[-1]["seq"] + 5, log) == []


async def test_a_long_backlog_is_read_a_page_at_a_time(logs: Logs, monkeypatch) -> None:
    """A follower of a long run never holds more than a page of its backlog: resuming
    from the start of 1,234 events reads pages of at most READ_PAGE, and loses nothing."""
    from streaming import subscribe as module

    log = logs.make()
    run = logs.name()
    logged = run_events(run, [f"t{i} " for i in range(1232)])
    await log.append(run, logged[:-1])
    await log.append(run, logged[-1:], final=True)
    read = log.read
    pages: list[int] = []

    async def spy(run_id: str, after_seq: int, *, limit: int | None = None) -> list[Event]:
        found = await read(run_id, after_seq, limit=limit)
        pages.append(len(found))
        assert limit == module.READ_PAGE
        return found

    monkeypatch.setattr(log, "read", spy)
    got = await asyncio.wait_for(collect(run, 0, log), BOUND)
    assert got == logged and len(got) == 1234
    assert pages == [500, 500, 234]
