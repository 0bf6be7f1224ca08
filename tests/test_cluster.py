"""Two daphne workers sharing Redis and PostgreSQL, the model behind the stand-in server:
text crosses workers exactly, resumes anywhere and stops from anywhere. The death of the
worker producing a run (kill -9) is tested on the full stack, in tests/test_stack.py."""

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from django.db import connection
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from streaming.models import Message
from tests.conftest import DaphneServer, daphne_env, ended_reply, guest_session, start_run_over
from tests.sse import follow_sse
from tests.standin import Reply

pytestmark = pytest.mark.django_db(transaction=True)

TEXT = "Grüße, 世界! 🎉 " + " ".join(f"token{i}" for i in range(150)) + " — fin."
WORKER_TTL = 1.5
REAP_INTERVAL = 0.3
POOL_SIZE = 3  # database connections per worker


@dataclass
class Cluster:
    a: DaphneServer
    b: DaphneServer
    cookies: httpx.Cookies = field(default_factory=httpx.Cookies)

    def client(self, server: DaphneServer) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=server.url, cookies=self.cookies, timeout=30)


@pytest.fixture(scope="module")
def workers(django_db_setup, django_db_blocker, standin_server, redis_url) -> Iterator[list[DaphneServer]]:
    """Two workers shared by this module's tests (a test that kills one gets it back)."""
    with django_db_blocker.unblock():
        env = daphne_env(
            REDIS_URL=redis_url,
            OPENAI_API_KEY="sk-test",
            OPENAI_BASE_URL=standin_server.base_url,
            AGENT_MODEL="gpt-test",
            STREAM_WORKER_TTL=str(WORKER_TTL),
            STREAM_REAP_INTERVAL=str(REAP_INTERVAL),
            STREAM_IDLE_CHECK_SECONDS="1",
            DATABASE_POOL_SIZE=str(POOL_SIZE),
        )
    servers = [DaphneServer(env), DaphneServer(env)]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def cluster(workers, standin, transactional_db) -> Cluster:
    for index, server in enumerate(workers):
        if not server.alive():
            workers[index] = DaphneServer(server.env)
    session = guest_session(workers[0].url)  # sessions live in the database: valid on both
    return Cluster(a=workers[0], b=workers[1], cookies=session.cookies)


async def start_run(cluster: Cluster, server: DaphneServer, **body) -> str:
    async with cluster.client(server) as client:
        return await start_run_over(client, **body)


async def read_events(
    cluster: Cluster, server: DaphneServer, run_id: str, *, after: int = 0, until_seq: int | None = None
) -> list[dict]:
    """Follow the run's SSE on `server` from `after`; leave once `until_seq` is reached."""
    until = None if until_seq is None else (lambda event, got: event["seq"] >= until_seq)
    async with cluster.client(server) as client:
        return await follow_sse(client, run_id, after=after, until=until)


def text_of(got: list[dict]) -> str:
    return "".join(e["text"] for e in got if e["type"] == "delta")


async def test_subscribers_on_both_workers_get_exactly_the_models_text(cluster, standin) -> None:
    standin.script(Reply(text=TEXT, tps=150))
    run_id = await start_run(cluster, cluster.a, flush_ms=10)
    on_a, on_b = await asyncio.gather(
        read_events(cluster, cluster.a, run_id), read_events(cluster, cluster.b, run_id)
    )
    for got in (on_a, on_b):
        assert [e["seq"] for e in got] == list(range(1, len(got) + 1))
        assert got[-1]["type"] == "completed"
        assert text_of(got) == TEXT
    reply = await Message.objects.aget(pk=run_id)
    assert reply.status == "completed" and reply.content == TEXT


@hsettings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(min_value=1, max_value=60), min_size=6, max_size=10))
def test_resuming_on_the_other_worker_at_any_cut_loses_and_repeats_nothing(cluster, standin, cuts) -> None:
    """Each subscriber leaves after sequence number `cut` and resumes on the other worker
    with that number, while the run is live or after it has ended."""
    standin.script(Reply(text=TEXT, tps=120))

    async def scenario() -> None:
        run_id = await start_run(cluster, cluster.a, flush_ms=5)

        async def hop(index: int, cut: int) -> str:
            first, second = (cluster.a, cluster.b) if index % 2 else (cluster.b, cluster.a)
            head = await read_events(cluster, first, run_id, until_seq=cut)
            last = head[-1]["seq"]
            tail = await read_events(cluster, second, run_id, after=last)
            assert all(e["seq"] > last for e in tail)
            seqs = [e["seq"] for e in head + tail]
            assert seqs == list(range(1, len(seqs) + 1))
            return text_of(head + tail)

        texts = await asyncio.gather(*(hop(i, cut) for i, cut in enumerate(cuts)))
        assert texts == [TEXT] * len(cuts)

    asyncio.run(scenario())


async def test_stop_sent_to_worker_b_stops_the_run_on_worker_a(cluster, standin) -> None:
    standin.script(Reply(tokens=[f"w{i} " for i in range(400)], tps=40))
    run_id = await start_run(cluster, cluster.a)

    async def stop_soon() -> None:
        await asyncio.to_thread(standin.wait_for, lambda reqs: reqs and reqs[0].tokens_sent >= 10)
        async with cluster.client(cluster.b) as client:
            response = await client.post(f"/api/runs/{run_id}/stop", json={})
            assert response.status_code == 202

    on_a, on_b, _ = await asyncio.gather(
        read_events(cluster, cluster.a, run_id), read_events(cluster, cluster.b, run_id), stop_soon()
    )
    assert on_a[-1]["type"] == on_b[-1]["type"] == "stopped"
    record = await asyncio.to_thread(standin.wait_closed_early, 0, 5)
    assert record.stream_closed_early and record.tokens_sent < 400
    reply = await Message.objects.aget(pk=run_id)
    assert reply.status == "stopped"
    assert reply.content == text_of(on_a) == text_of(on_b)
    assert 10 <= reply.token_count < 400


async def test_a_disconnect_stops_a_run_that_asked_for_it(cluster, standin) -> None:
    standin.script(Reply(tokens=[f"w{i} " for i in range(400)], tps=40))
    run_id = await start_run(cluster, cluster.a, cancel_on_disconnect=True)
    got = await read_events(cluster, cluster.b, run_id, until_seq=4)
    assert got
    reply = await ended_reply(run_id)
    assert reply.status == "stopped"
    record = await asyncio.to_thread(standin.wait_closed_early, 0, 5)
    assert record.stream_closed_early


async def test_by_default_a_disconnect_does_not_stop_the_run(cluster, standin) -> None:
    standin.script(Reply(tokens=[f"w{i} " for i in range(60)], tps=100))
    run_id = await start_run(cluster, cluster.a)
    await read_events(cluster, cluster.a, run_id, until_seq=3)
    got = await read_events(cluster, cluster.b, run_id)
    assert got[-1]["type"] == "completed"
    assert text_of(got) == "".join(f"w{i} " for i in range(60))


@pytest.mark.parametrize(
    "reply, error, partial",
    [
        (Reply(error_status=429), "rate-limiting requests (HTTP 429)", ""),
        (Reply(error_status=500), "returned an error (HTTP 500)", ""),
        (Reply(tokens=["a ", "b ", "c ", "d ", "e "], tps=50, drop_after=3), "connection to the model provider was lost", "a b c "),
    ],
)
async def test_model_errors_reach_subscribers_on_the_other_worker(cluster, standin, reply, error, partial) -> None:
    standin.script(reply)
    run_id = await start_run(cluster, cluster.a)
    got = await read_events(cluster, cluster.b, run_id)
    assert got[-1]["type"] == "failed" and error in got[-1]["error"]
    assert text_of(got) == partial
    stored = await Message.objects.aget(pk=run_id)
    assert stored.status == "failed" and error in stored.error and stored.content == partial


async def test_open_streams_hold_no_database_connections(cluster, standin) -> None:
    standin.script(Reply(tokens=[f"w{i} " for i in range(200)], tps=20))
    run_id = await start_run(cluster, cluster.a)

    def connections_to_test_db() -> int:
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                )
                return cursor.fetchone()[0]
        finally:
            connection.close()  # this thread's own connection

    before = await asyncio.to_thread(connections_to_test_db)
    followers = [
        asyncio.create_task(read_events(cluster, server, run_id))
        for server in (cluster.a, cluster.b) * 8
    ]
    await asyncio.sleep(1.5)  # all sixteen streams are open and receiving
    during = await asyncio.to_thread(connections_to_test_db)
    async with cluster.client(cluster.b) as client:
        await client.post(f"/api/runs/{run_id}/stop", json={})
    results = await asyncio.gather(*followers)
    # More streams than the pools hold connections: if a stream kept one, the rest would
    # have waited for a free connection and failed.
    assert all(got[-1]["type"] == "stopped" for got in results)
    assert during - before <= 2 * POOL_SIZE


async def test_simultaneous_starts_on_both_workers_never_exceed_the_concurrent_limit(cluster, standin) -> None:
    """Ten sends at once from one user, split over two workers: exactly the limit (3 by
    default) is admitted, the rest get 429, and only the admitted ones reach the model."""
    standin.script(*[Reply(tokens=[f"w{i} " for i in range(400)], tps=20)] * 10)
    async with cluster.client(cluster.a) as client:
        thread = (await client.post("/api/threads", json={})).json()["id"]

    async def send(index: int) -> httpx.Response:
        async with cluster.client((cluster.a, cluster.b)[index % 2]) as client:
            return await client.post(f"/api/threads/{thread}/messages", json={"message": f"m{index}"})

    answers = await asyncio.gather(*(send(i) for i in range(10)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 3 + [429] * 7
    refused = next(a for a in answers if a.status_code == 429).json()
    assert refused == {"error": "You already have 3 replies generating; wait for one to finish or stop it."}
    assert await Message.objects.filter(thread_id=thread, role="assistant").acount() == 3
    assert await Message.objects.filter(thread_id=thread, role="user").acount() == 3
    run_ids = [a.json()["run_id"] for a in answers if a.status_code == 201]
    await asyncio.to_thread(standin.wait_for, lambda requests: len(requests) >= 3)
    async with cluster.client(cluster.b) as client:
        for run_id in run_ids:
            assert (await client.post(f"/api/runs/{run_id}/stop", json={})).status_code == 202
    for run_id in run_ids:
        assert (await ended_reply(run_id, timeout=10)).status == "stopped"
    assert len(standin.requests) == 3
