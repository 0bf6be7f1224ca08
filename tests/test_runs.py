"""Runs in one process, on both event-log backends: exact text, persistence, coalescing,
stop, model errors, disconnects and reaping."""

import asyncio
import uuid

import pytest

from streaming import events
from streaming.logs import event_log
from streaming.manager import run_manager, run_reap
from streaming.models import Message, Thread, User
from streaming.runs import RunOptions, run_start, run_stop, run_subscribe
from tests.conftest import ended_reply
from tests.standin import Reply, split_tokens

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("run_cleanup")]

TEXT = "Héllo — 世界 🎉! " + " ".join(f"word{i}" for i in range(40)) + "\n\n```py\nprint('ok')\n```"


async def make_thread(name: str = "ann") -> tuple[User, Thread]:
    user = await User.objects.acreate(username=f"{name}-{uuid.uuid4().hex[:8]}")
    return user, await Thread.objects.acreate(owner=user)


async def follow(run_id: str, after: int = 0) -> list[dict]:
    return [event async for event in run_subscribe(run_id, after)]


async def start(text: str = "hi", **options) -> str:
    user, thread = await make_thread()
    handle = await run_start(user=user, thread=thread, text=text, options=RunOptions(**options))
    return handle.run_id


async def test_subscriber_gets_exactly_the_models_text_and_it_is_persisted(standin, backend) -> None:
    standin.script(Reply(text=TEXT, tps=200))
    run_id = await start()
    got = await follow(run_id)

    assert [e["seq"] for e in got] == list(range(1, len(got) + 1))
    assert got[0]["type"] == "started" and got[0]["model"] == "gpt-test"
    assert [e["type"] for e in got if events.is_terminal(e)] == ["completed"]
    assert got[-1]["type"] == "completed"
    assert events.text_of(got) == TEXT
    reply = await Message.objects.aget(pk=run_id)
    assert reply.status == "completed" and reply.content == TEXT
    assert reply.token_count == len(split_tokens(TEXT)) == got[-1]["metrics"]["token_count"]
    assert reply.ttft_seconds is not None and reply.tokens_per_second > 0


async def test_a_late_subscriber_replays_the_whole_run_from_the_log(standin, backend) -> None:
    standin.script(Reply(text=TEXT))
    run_id = await start()
    first = await follow(run_id)
    again = await follow(run_id)
    assert again == first
    assert await follow(run_id, after=3) == first[3:]


async def test_generation_continues_after_the_subscriber_leaves(standin, backend) -> None:
    standin.script(Reply(text=TEXT, tps=100))
    run_id = await start()
    async for event in run_subscribe(run_id):
        if event["type"] == "delta":
            break
    reply = await ended_reply(run_id)
    assert reply.status == "completed" and reply.content == TEXT
    assert len(standin.requests) == 1 and not standin.requests[0].stream_closed_early


async def test_buffer_size_coalesces_by_token_count_and_flushes_the_rest(standin, backend) -> None:
    tokens = [f"t{i} " for i in range(23)]
    standin.script(Reply(tokens=tokens))
    run_id = await start(buffer_size=5, flush_ms=0)
    got = await follow(run_id)
    deltas = [e for e in got if e["type"] == "delta"]
    assert [e["tokens"] for e in deltas] == [5, 5, 5, 5, 3]
    assert [e["token_count"] for e in deltas] == [5, 10, 15, 20, 23]
    assert deltas[0]["text"] == "".join(tokens[:5])
    assert got[-1]["type"] == "completed" and got[-2]["type"] == "delta"


async def test_flush_window_merges_fast_tokens(standin, backend) -> None:
    standin.script(Reply(tokens=[f"t{i} " for i in range(40)], tps=400))
    run_id = await start(flush_ms=50)
    deltas = [e for e in await follow(run_id) if e["type"] == "delta"]
    assert sum(e["tokens"] for e in deltas) == 40
    assert len(deltas) < 40 and max(e["tokens"] for e in deltas) > 1


async def test_checkpoints_and_metrics_while_streaming(standin, backend, settings) -> None:
    settings.STREAM_CHECKPOINT_SECONDS = 0.2
    standin.script(Reply(text=TEXT, tps=40))
    run_id = await start()
    seen_partial = ""
    got = []
    async for event in run_subscribe(run_id):
        got.append(event)
        if event["type"] == "metrics" and not seen_partial:
            seen_partial = (await Message.objects.aget(pk=run_id)).content
    assert seen_partial and TEXT.startswith(seen_partial) and seen_partial != TEXT
    metrics = [e["metrics"] for e in got if e["type"] == "metrics"]
    assert metrics and all(m["token_count"] > 0 for m in metrics)
    assert [m["token_count"] for m in metrics] == sorted(m["token_count"] for m in metrics)


async def test_stop_cancels_the_model_and_keeps_the_partial_text(standin, backend) -> None:
    standin.script(Reply(tokens=[f"w{i} " for i in range(400)], tps=40))
    run_id = await start()
    got = []
    async for event in run_subscribe(run_id):
        got.append(event)
        if event["type"] == "delta" and event["token_count"] >= 5:
            await run_stop(run_id=run_id)
    assert got[-1]["type"] == "stopped"
    record = await asyncio.to_thread(standin.wait_closed_early, 0, 5)
    assert record.stream_closed_early and record.tokens_sent < 400
    reply = await Message.objects.aget(pk=run_id)
    assert reply.status == "stopped"
    assert reply.content == events.text_of(got) and 5 <= reply.token_count < 400


@pytest.mark.parametrize(
    "reply, error",
    [
        (Reply(error_status=429), "rate-limiting requests (HTTP 429)"),
        (Reply(error_status=500), "returned an error (HTTP 500)"),
        (Reply(text="one two three four five six seven", drop_after=4), "connection to the model provider was lost"),
    ],
)
async def test_model_errors_end_the_run_failed_with_the_partial_text(standin, backend, reply, error) -> None:
    standin.script(reply)
    run_id = await start()
    got = await follow(run_id)
    assert got[-1]["type"] == "failed" and error in got[-1]["error"]
    stored = await Message.objects.aget(pk=run_id)
    assert stored.status == "failed" and error in stored.error
    expected = "one two three four" if reply.drop_after else ""
    assert stored.content == events.text_of(got) == expected


async def test_a_run_whose_worker_died_is_reaped_as_interrupted(standin, use_redis, settings) -> None:
    settings.STREAM_REAP_INTERVAL = 0.2
    settings.STREAM_WORKER_TTL = 0.6
    user, thread = await make_thread()
    reply = await Message.objects.acreate(thread=thread, role="assistant", status="streaming")
    run_id = str(reply.pk)
    log = event_log()
    # A worker that registered the run, logged some text, then vanished without a heartbeat.
    await log.register(run_id, {"worker": "gone:1:dead", "owner": user.pk, "thread": str(thread.pk)})
    await log.append(run_id, [
        events.started(run_id, 1, thread_id=str(thread.pk), model="gpt-test"),
        events.delta(run_id, 2, text="partial ", tokens=1, token_count=1),
        events.delta(run_id, 3, text="text", tokens=1, token_count=2),
    ])
    await run_manager().ensure_started()
    got = await asyncio.wait_for(follow(run_id), timeout=5)
    assert got[-1]["type"] == "interrupted" and got[-1]["seq"] == 4
    assert "stopped before it finished" in got[-1]["error"]
    stored = await Message.objects.aget(pk=run_id)
    assert stored.status == "interrupted" and stored.content == "partial text"
    assert stored.token_count == 2
    assert await log.meta(run_id) is None


async def test_nothing_follows_the_terminal_event_even_with_constant_checkpoints(standin, backend, settings) -> None:
    """Checkpoints (and their metrics events) race the end of the run; the terminal event
    must stay last, and the run must leave the registry."""
    settings.STREAM_CHECKPOINT_SECONDS = 0
    standin.script(*[Reply(tokens=[f"t{i} " for i in range(20)], tps=400) for _ in range(4)])
    run_ids = [await start() for _ in range(4)]
    for run_id in run_ids:
        got = await follow(run_id)
        for _ in range(100):  # the log and registry settle just after the terminal event
            logged = await event_log().read(run_id, 0)
            if await event_log().meta(run_id) is None:
                break
            await asyncio.sleep(0.02)
        assert logged == got
        assert [e["type"] for e in logged if events.is_terminal(e)] == ["completed"]
        assert events.is_terminal(logged[-1])
        assert await event_log().meta(run_id) is None


async def test_a_worker_silent_for_less_than_a_ttl_keeps_its_runs(use_redis, settings) -> None:
    settings.STREAM_REAP_INTERVAL = 0.1
    settings.STREAM_WORKER_TTL = 1.0
    user, thread = await make_thread()
    reply = await Message.objects.acreate(thread=thread, role="assistant", status="streaming")
    run_id = str(reply.pk)
    log = event_log()
    worker = f"slow:{uuid.uuid4().hex}"
    await log.register(run_id, {"worker": worker, "owner": user.pk, "thread": str(thread.pk)})
    await log.append(run_id, [events.started(run_id, 1, thread_id=str(thread.pk), model="m")])
    await log.heartbeat(worker, 0.2)
    await run_manager().ensure_started()
    await asyncio.sleep(0.5)  # the heartbeat has lapsed: the run looks orphaned ...
    assert run_id in await log.orphaned_runs("observer")
    await log.heartbeat(worker, 5)  # ... but the worker speaks again within a TTL
    await asyncio.sleep(0.8)
    assert await log.meta(run_id) is not None
    assert (await Message.objects.aget(pk=run_id)).status == "streaming"
    await log.unregister(run_id)


async def test_a_reaped_producer_that_was_only_slow_adds_nothing_and_the_database_agrees(standin, use_redis) -> None:
    """Another worker takes a live run for dead and reaps it: from then on the producer's
    text and its own end are refused, it stops the model, and the log and the database
    both say `interrupted`, with the same text."""
    standin.script(Reply(tokens=[f"w{i} " for i in range(400)], tps=40))
    run_id = await start(flush_ms=0)
    log = event_log()
    await asyncio.to_thread(standin.wait_for, lambda reqs: reqs and reqs[0].tokens_sent >= 10)
    await run_reap(run_id, log=log, registry=log, who="reaper:elsewhere")
    got = await asyncio.wait_for(follow(run_id), timeout=5)
    record = await asyncio.to_thread(standin.wait_closed_early, 0, 5)  # the producer stopped
    assert record.stream_closed_early and record.tokens_sent < 400
    await asyncio.sleep(0.3)  # the producer has ended by now
    logged = await log.read(run_id, 0)
    assert logged == got
    assert [e["type"] for e in logged if events.is_terminal(e)] == ["interrupted"]
    assert [e["seq"] for e in logged] == list(range(1, len(logged) + 1))
    stored = await ended_reply(run_id)
    assert stored.status == "interrupted" and stored.content == events.text_of(logged)
    assert stored.token_count == sum(e["tokens"] for e in logged if events.is_delta(e))
    assert await log.meta(run_id) is None


async def test_a_run_registered_here_without_a_producer_is_ended(use_redis, settings) -> None:
    """A start interrupted between registering its run and starting its producer (the
    request was cancelled) leaves no run waiting forever: this worker ends it."""
    settings.STREAM_REAP_INTERVAL = 0.2
    settings.STREAM_WORKER_TTL = 0.6
    manager = run_manager()
    await manager.ensure_started()
    user, thread = await make_thread()
    reply = await Message.objects.acreate(thread=thread, role="assistant", status="streaming")
    run_id = str(reply.pk)
    log = event_log()
    await log.register(run_id, {"worker": manager.worker_id, "owner": user.pk, "thread": str(thread.pk)})
    await log.append(run_id, [events.started(run_id, 1, thread_id=str(thread.pk), model="m")])
    got = await asyncio.wait_for(follow(run_id), timeout=5)
    assert [e["type"] for e in got] == ["started", "interrupted"]
    assert (await Message.objects.aget(pk=run_id)).status == "interrupted"
    assert await log.meta(run_id) is None
