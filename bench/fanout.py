"""Fan-out benchmark: many concurrent runs, each followed by several SSE subscribers spread
over two daphne workers, comparing Redis pub/sub fan-out with per-listener XREAD BLOCK.

    .venv/bin/python -m bench.fanout                      # both modes, default load
    .venv/bin/python -m bench.fanout --fanout pubsub --runs 200 --subscribers 1

For each mode it starts fresh: the stand-in OpenAI server (tests/standin.py, scripted with
`stamp_tokens`, so every token carries its index and the time it was sent), a database
cloned from a freshly migrated template, and two daphne workers (`STREAM_LOG_BACKEND`:
the product's Redis log for pubsub, bench/xread_log.py's for xread).
It then starts `--runs` runs at once, alternately on worker 1 and 2, and follows each with
`--subscribers` SSE clients spread over both workers. Each subscriber parses the SSE byte
stream across reads, splits delta texts into `"<i>:<ts> "` tokens and records
`receive_time - ts` per token (one machine, one clock), then checks that it received every
index 0..T-1 exactly once. Worker CPU comes from /proc/<pid>/stat (utime + stime).

Needs PostgreSQL (trust auth) and Redis; see docs/benchmarks.md for results.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp
import psycopg
import redis
import redis.asyncio as aioredis

from deploy.twin import free_port
from tests.standin import Reply, control_script

ROOT = Path(__file__).resolve().parent.parent
TERMINAL = {"completed", "stopped", "failed", "interrupted"}
CLK_TCK = os.sysconf("SC_CLK_TCK")
BACKENDS = {
    "pubsub": "streaming.logs.redis.RedisEventLog",
    "xread": "bench.xread_log.XreadEventLog",
}


# ---------------------------------------------------------------------------- processes
def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


class Processes:
    """Child processes, all stopped on exit whatever happens."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen[bytes]] = []

    def start(
        self, args: list[str], env: dict[str, str], log: Path, *, cwd: Path = ROOT
    ) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.children.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with contextlib.suppress(ValueError):
            self.children.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.children):
            self.stop(proc)


def wait_for_line(log: Path, proc: subprocess.Popen[bytes], prefix: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited early:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    raise RuntimeError(f"{proc.args} did not print {prefix!r} within {timeout}s")


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daphne exited early:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(
        f"daphne at {url} did not become healthy ({last}):\n{log.read_text(errors='replace')}"
    )


# ---------------------------------------------------------------------------- services
def pg_admin(admin_url: str, *statements: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def connection_headroom(admin_url: str) -> tuple[int, int]:
    """PostgreSQL's `max_connections` and the connections open now."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        limit = int(conn.execute("SHOW max_connections").fetchone()[0])
        used = conn.execute("SELECT count(*) FROM pg_stat_activity").fetchone()[0]
    return limit, used


def db_url(admin_url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(admin_url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def prepare_template(args: argparse.Namespace, env: dict[str, str]) -> str:
    """A freshly migrated database that each mode's database is cloned from."""
    template = f"{args.db_name}_template"
    pg_admin(
        args.pg_admin_url,
        f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)',
        f'CREATE DATABASE "{template}"',
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT, env={**env, "DATABASE_URL": db_url(args.pg_admin_url, template)}, check=True,
    )  # fmt: skip
    return template


def fresh_database(args: argparse.Namespace, template: str) -> str:
    pg_admin(
        args.pg_admin_url,
        f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)',
        f'CREATE DATABASE "{args.db_name}" TEMPLATE "{template}"',
    )
    return db_url(args.pg_admin_url, args.db_name)


def clear_redis(url: str) -> None:
    """Delete the product's keys (`chat:*`) in the bench's Redis database."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter("chat:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


def redis_cpu(url: str) -> float:
    client = redis.Redis.from_url(url)
    try:
        info = client.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
    finally:
        client.close()


# ---------------------------------------------------------------------------- clients
@dataclass
class Subscription:
    run: int
    worker: int  # 0 or 1
    indices: list[int] = field(default_factory=list)
    stamps: list[float] = field(default_factory=list)  # when the stand-in sent each token
    received: list[float] = field(default_factory=list)  # when this client read it
    terminal: str | None = None
    error: str | None = None
    seq_regressions: int = 0  # SSE event seqs not strictly increasing
    opened_at: float | None = None  # when the response headers arrived


async def describe_error(resp: aiohttp.ClientResponse) -> str:
    """`HTTP <status>: <what went wrong>`, short, from a JSON or an HTML error answer."""
    body = " ".join((await resp.text()).split())
    if 'class="exception_value">' in body:  # Django's debug error page
        body = body.split('class="exception_value">', 1)[1].split("</pre>", 1)[0]
    elif "<title>" in body:
        body = body.split("<title>", 1)[1].split("</title>", 1)[0]
    return f"HTTP {resp.status}: {html.unescape(body)[:160]}"


def sse_events(buffer: bytes) -> tuple[list[dict], bytes]:
    """The complete SSE events' parsed `data:` JSON in `buffer`, and the unparsed rest (an
    event split across reads waits there for the next read). Comments are skipped."""
    *raws, rest = buffer.split(b"\n\n")
    events = []
    for raw in raws:
        data = b"\n".join(
            line[5:].lstrip(b" ") for line in raw.split(b"\n") if line.startswith(b"data:")
        )
        if data:  # else a comment (heartbeat) or the retry preamble
            events.append(json.loads(data))
    return events, rest


def stamped_tokens(carry: str, text: str) -> tuple[list[tuple[int, float]], str]:
    """(index, send time) of the whole `stamp_tokens` tokens (`"<i>:<ts> "`) in `carry +
    text`, and the incomplete tail to carry into the next text."""
    *tokens, carry = (carry + text).split(" ")
    pairs = []
    for token in tokens:
        index, stamp = token.split(":")
        pairs.append((int(index), float(stamp)))
    return pairs, carry


async def follow(
    http: aiohttp.ClientSession, base: str, run_id: str, sub: Subscription, cookies: str
) -> None:
    """Read one run's SSE stream to its end, parsing events across reads."""
    try:
        async with http.get(
            f"{base}/api/runs/{run_id}/events?after=0", headers={"Cookie": cookies}
        ) as resp:
            if resp.status != 200:
                sub.error = await describe_error(resp)
                return
            sub.opened_at = time.time()
            buffer, carry, last_seq = b"", "", 0
            async for chunk in resp.content.iter_any():
                received = time.time()
                events, buffer = sse_events(buffer + chunk)
                for event in events:
                    seq = event.get("seq")
                    if isinstance(seq, int):
                        if seq <= last_seq:
                            sub.seq_regressions += 1
                        last_seq = max(last_seq, seq)
                    kind = event.get("type")
                    if kind == "delta":
                        tokens, carry = stamped_tokens(carry, event["text"])
                        for index, stamp in tokens:
                            sub.indices.append(index)
                            sub.stamps.append(stamp)
                            sub.received.append(received)
                    elif kind in TERMINAL:
                        sub.terminal = kind
                        return
                    elif kind == "error":
                        sub.error = event.get("error", "error event")
                        return
            sub.error = "stream ended without a terminal event"
    except asyncio.CancelledError:
        sub.error = sub.error or "timed out"
        raise
    except Exception as exc:  # recorded, reported; the benchmark carries on
        sub.error = f"{type(exc).__name__}: {exc}"


async def start_run(
    http: aiohttp.ClientSession, base: str, thread_id: str, flush_ms: int, cookies: str
) -> str:
    async with http.post(
        f"{base}/api/threads/{thread_id}/messages",
        json={"message": "bench", "flush_ms": flush_ms},
        headers={"Cookie": cookies},
    ) as resp:
        if resp.status != 201:
            raise RuntimeError(f"starting a run failed: {await describe_error(resp)}")
        return (await resp.json())["run_id"]


async def guest(http: aiohttp.ClientSession, base: str) -> tuple[str, str]:
    """A new guest user (its session cookie, from `GET /`) and a thread of theirs."""
    async with http.get(f"{base}/") as resp:
        if resp.status != 200:
            raise RuntimeError(f"GET / failed: HTTP {resp.status}")
        cookies = "; ".join(f"{c.key}={c.value}" for c in resp.cookies.values())
    async with http.post(f"{base}/api/threads", json={}, headers={"Cookie": cookies}) as resp:
        body = await resp.json()
        if resp.status != 201:
            raise RuntimeError(f"creating a thread failed: HTTP {resp.status} {body}")
    return cookies, body["id"]


async def guests(
    http: aiohttp.ClientSession, bases: list[str], count: int
) -> list[tuple[str, str]]:
    """One guest per run (the product limits concurrent runs and messages per user)."""
    limit = asyncio.Semaphore(8)

    async def one(i: int) -> tuple[str, str]:
        async with limit:
            return await guest(http, bases[i % 2])

    return await asyncio.gather(*(one(i) for i in range(count)))


@dataclass
class Result:
    mode: str
    runs: int
    subscribers: int
    tokens: int
    tps: float
    flush_ms: int
    expected_tokens: int = 0
    received_tokens: int = 0
    wall_seconds: float = 0.0
    delivered_tps: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    live_p50_ms: float = 0.0
    live_p99_ms: float = 0.0
    backlog_tokens: int = 0
    lost: int = 0  # indices missing, over all subscribers
    lost_in_completed: int = 0  # ... in streams that ended `completed`
    duplicated: int = 0
    unexpected: int = 0  # indices outside 0..T-1
    seq_regressions: int = 0
    not_completed: int = 0
    terminals: dict[str, int] = field(default_factory=dict)  # how subscribers' streams ended
    errors: list[str] = field(default_factory=list)
    worker_cpu_seconds: list[float] = field(default_factory=list)
    worker_cpu_us_per_token: float = 0.0
    redis_cpu_seconds: float = 0.0
    client_cpu_seconds: float = 0.0
    heartbeat_lapses: int = 0  # times a worker's heartbeat key was found missing
    log_anomalies: list[str] = field(default_factory=list)  # from the runs' logs in Redis
    still_registered: int = 0  # runs still in the live-run registry after the end
    run_ids: list[str] = field(default_factory=list)
    worker_log_problems: list[str] = field(default_factory=list)
    worker_logs: list[str] = field(default_factory=list)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


async def watch_heartbeats(url: str, result: Result, stop: asyncio.Event) -> None:
    """Count moments when fewer than two workers have a live heartbeat key (a peer may then
    reap the missing worker's runs although it is alive)."""
    client = aioredis.Redis.from_url(url)
    try:
        while not stop.is_set():  # a flag as well: a cancel can be lost on Python 3.11
            alive = [key async for key in client.scan_iter("chat:worker:*")]
            if len(alive) < 2:
                result.heartbeat_lapses += 1
            await asyncio.sleep(0.25)
    finally:
        await client.aclose()


def check_logs(url: str, result: Result, settle: float = 3.0) -> None:
    """After the streams end, each run's log should hold exactly one terminal event, last,
    and the run should have left the live-run registry."""
    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            registered = client.hmget("chat:active:runs", result.run_ids) if result.run_ids else []
            if not any(registered):
                break
            time.sleep(0.25)
        result.still_registered = sum(1 for meta in registered if meta)
        for run_id in result.run_ids:
            types = [
                json.loads(fields[b"e"])["type"]
                for _, fields in client.xrange(f"chat:log:{run_id}")
            ]
            ends = [i for i, kind in enumerate(types) if kind in TERMINAL]
            if len(ends) != 1 or ends[0] != len(types) - 1:
                tail = ",".join(types[ends[0] :] if ends else types[-3:])
                result.log_anomalies.append(f"{run_id}: {tail}")
    finally:
        client.close()


async def drive(
    args: argparse.Namespace, bases: list[str], pids: list[int], redis_url: str, result: Result
) -> None:
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        users = await guests(http, bases, args.runs + 2)  # (cookies, thread) per run
        # Warm up each worker (imports, connection pools, first-request costs) with one
        # short run started on each, followed from both.
        warm = [Subscription(-1, w) for w in (0, 1, 0, 1)]
        for i in (0, 1):
            cookies, thread = users[args.runs + i]
            run_id = await start_run(http, bases[i], thread, args.flush_ms, cookies)
            await asyncio.gather(
                *(follow(http, bases[w], run_id, warm[2 * i + w], cookies) for w in (0, 1))
            )
        if any(sub.terminal != "completed" for sub in warm):
            raise RuntimeError(f"warm-up runs failed: {warm}")

        cpu_before = [cpu_seconds(pid) for pid in pids]
        redis_before = redis_cpu(redis_url)
        client_before = resource.getrusage(resource.RUSAGE_SELF)
        subs: list[Subscription] = []
        followers: list[asyncio.Task[None]] = []

        async def launch(i: int) -> None:
            cookies, thread = users[i]
            run_id = await start_run(http, bases[i % 2], thread, args.flush_ms, cookies)
            result.run_ids.append(run_id)
            for j in range(args.subscribers):
                worker = (i // 2 + j) % 2
                sub = Subscription(i, worker)
                subs.append(sub)
                followers.append(
                    asyncio.create_task(follow(http, bases[worker], run_id, sub, cookies))
                )

        stop_watching = asyncio.Event()
        watcher = asyncio.create_task(watch_heartbeats(redis_url, result, stop_watching))
        started = time.time()
        launches = await asyncio.gather(
            *(launch(i) for i in range(args.runs)), return_exceptions=True
        )
        for failure in launches:
            if isinstance(failure, BaseException):
                result.errors.append(f"start: {failure}")
        budget = args.first_token_delay + args.tokens / args.tps + args.timeout
        _, pending = await asyncio.wait(followers, timeout=budget) if followers else ((), ())
        for task in pending:
            task.cancel()
        if pending:  # bounded: leftovers end when the session closes
            await asyncio.wait(pending, timeout=5)
        ended = time.time()
        stop_watching.set()
        watcher.cancel()
        await asyncio.wait([watcher], timeout=5)

        cpu_after = [cpu_seconds(pid) for pid in pids]
        client_after = resource.getrusage(resource.RUSAGE_SELF)
        result.redis_cpu_seconds = redis_cpu(redis_url) - redis_before
        result.client_cpu_seconds = (client_after.ru_utime + client_after.ru_stime) - (
            client_before.ru_utime + client_before.ru_stime
        )
        result.worker_cpu_seconds = [a - b for a, b in zip(cpu_after, cpu_before, strict=True)]

    summarize(args, subs, started, ended, result)


def summarize(
    args: argparse.Namespace, subs: list[Subscription], started: float, ended: float,
    result: Result,
) -> None:  # fmt: skip
    latencies: list[float] = []  # every token
    live: list[float] = []  # tokens sent after their subscriber's stream was open
    first_sent, last_received = ended, started
    for sub in subs:
        if sub.error:
            result.errors.append(f"run {sub.run} on worker {sub.worker + 1}: {sub.error}")
        seen = set(sub.indices)
        missing = len(set(range(args.tokens)) - seen)
        result.lost += missing
        ending = sub.terminal or "no terminal event"
        result.terminals[ending] = result.terminals.get(ending, 0) + 1
        if sub.terminal != "completed":
            result.not_completed += 1
        else:
            result.lost_in_completed += missing
        result.duplicated += len(sub.indices) - len(seen)
        result.unexpected += len(seen - set(range(args.tokens)))
        result.seq_regressions += sub.seq_regressions
        result.received_tokens += len(sub.indices)
        for stamp, received in zip(sub.stamps, sub.received, strict=True):
            latencies.append(received - stamp)
            if sub.opened_at is not None and stamp >= sub.opened_at:
                live.append(received - stamp)
            else:
                result.backlog_tokens += 1
            first_sent = min(first_sent, stamp)
            last_received = max(last_received, received)
    result.expected_tokens = args.runs * args.subscribers * args.tokens
    # The streaming phase: from the first token sent to the last token received.
    result.wall_seconds = max(1e-9, last_received - first_sent)
    result.delivered_tps = result.received_tokens / result.wall_seconds
    latencies.sort()
    live.sort()
    result.p50_ms, result.p95_ms, result.p99_ms = (
        percentile(latencies, q) * 1000 for q in (50, 95, 99)
    )
    result.max_ms = (latencies[-1] if latencies else float("nan")) * 1000
    result.live_p50_ms = percentile(live, 50) * 1000
    result.live_p99_ms = percentile(live, 99) * 1000
    result.worker_cpu_us_per_token = (
        sum(result.worker_cpu_seconds) / max(1, result.received_tokens) * 1e6
    )


# ---------------------------------------------------------------------------- one mode
def worker_log_problems(logs: list[Path]) -> list[str]:
    problems = []
    for number, log in enumerate(logs, 1):
        for line in log.read_text(errors="replace").splitlines():
            if any(word in line for word in ("ERROR", "WARNING", "Traceback", "CRITICAL")):
                problems.append(f"worker {number}: {line.strip()[:300]}")
    return problems


def run_mode(
    args: argparse.Namespace, mode: str, template: str, base_env: dict[str, str],
    procs: Processes, logdir: Path, tag: str,
) -> Result:  # fmt: skip
    result = Result(mode, args.runs, args.subscribers, args.tokens, args.tps, args.flush_ms)
    database_url = fresh_database(args, template)
    clear_redis(args.redis_url)

    standin_log = logdir / f"{tag}-standin.log"
    port = free_port()
    standin = procs.start(
        [sys.executable, "-m", "tests.standin", "--port", str(port), "--tps", str(args.tps)],
        base_env, standin_log,
    )  # fmt: skip
    standin_url = wait_for_line(standin_log, standin, "standin listening on ", 15)
    # Two short replies for the warm-up runs, then every run gets the stamped default.
    warm = Reply(tokens=["w"] * 3, tps=0, stamp_tokens=True)
    default = Reply(
        tokens=["x"] * args.tokens, tps=args.tps, stamp_tokens=True,
        first_token_delay=args.first_token_delay,
    )  # fmt: skip
    control_script(standin_url, warm, warm, default=default)

    env = {
        **base_env,
        "DATABASE_URL": database_url,
        "REDIS_URL": args.redis_url,
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_BASE_URL": standin_url,
        "AGENT_MODEL": "gpt-bench",
        "AGENT_API": "responses",
        "STREAM_LOG_BACKEND": BACKENDS[mode],
        "STREAM_FLUSH_MS": str(args.flush_ms),
        "CHAT_GUESTS_PER_ADDRESS": "1000000/h",  # every run has a guest of its own
        "LOG_LEVEL": "INFO",
        **dict(item.split("=", 1) for item in args.worker_env),
    }
    workers, bases, logs = [], [], []
    for number in (1, 2):
        port = free_port()
        log = logdir / f"{tag}-worker{number}.log"
        workers.append(
            procs.start(
                [sys.executable, "-m", "chatproject.serve", "-b", "127.0.0.1", "-p", str(port),
                 "chatproject.asgi:application"],
                env, log,
            )
        )  # fmt: skip
        bases.append(f"http://127.0.0.1:{port}")
        logs.append(log)
    for proc, base, log in zip(workers, bases, logs, strict=True):
        wait_healthy(base, proc, log)
    result.worker_logs = [str(log) for log in logs]
    try:
        asyncio.run(drive(args, bases, [w.pid for w in workers], args.redis_url, result))
        check_logs(args.redis_url, result)  # before the workers stop (stopping reaps runs)
    finally:
        for proc in [*workers, standin]:
            procs.stop(proc)
    result.worker_log_problems = worker_log_problems(logs)
    return result


# ---------------------------------------------------------------------------- output
def report(result: Result) -> None:
    r = result
    print(
        f"\n== fan-out: {r.mode}  runs={r.runs} subscribers/run={r.subscribers} "
        f"tokens/run={r.tokens} tps={r.tps:g} flush_ms={r.flush_ms}"
    )
    print(
        f"tokens received   {r.received_tokens} of {r.expected_tokens} "
        f"in {r.wall_seconds:.2f} s -> {r.delivered_tps:.0f} tokens/s delivered"
    )
    print(
        f"latency (ms)      p50 {r.p50_ms:.1f}  p95 {r.p95_ms:.1f}  p99 {r.p99_ms:.1f}  "
        f"max {r.max_ms:.1f}   (live only: p50 {r.live_p50_ms:.1f} p99 {r.live_p99_ms:.1f}; "
        f"{r.backlog_tokens} tokens sent before their subscriber connected)"
    )
    print(
        f"lost {r.lost} (in completed streams: {r.lost_in_completed})  "
        f"duplicated {r.duplicated}  unexpected {r.unexpected}  "
        f"seq regressions {r.seq_regressions}  streams not completed {r.not_completed}"
    )
    if r.not_completed:
        print(f"stream endings     {r.terminals}")
    cpu = " + ".join(f"{c:.2f}" for c in r.worker_cpu_seconds)
    print(
        f"worker CPU        {cpu} s = {r.worker_cpu_us_per_token:.0f} us per delivered token"
        f"   (redis {r.redis_cpu_seconds:.2f} s, bench client {r.client_cpu_seconds:.2f} s)"
    )
    print(
        f"server side       heartbeat lapses {r.heartbeat_lapses}  "
        f"runs still registered {r.still_registered}  "
        f"logs not ending in exactly one terminal event {len(r.log_anomalies)}"
    )
    for anomaly in r.log_anomalies[:5]:
        print(f"  log: {anomaly}")
    kinds: dict[str, int] = {}
    for error in r.errors:
        kind = error.split(": ", 1)[-1]
        kinds[kind] = kinds.get(kind, 0) + 1
    for kind, count in sorted(kinds.items(), key=lambda item: -item[1])[:10]:
        print(f"  {count} x error: {kind}")
    print(f"worker log lines with WARNING/ERROR/Traceback: {len(r.worker_log_problems)}")
    for line in r.worker_log_problems[:5]:
        print(f"  {line}")
    print(f"worker logs: {' '.join(r.worker_logs)}")


def compare(results: list[Result]) -> None:
    """xread relative to pubsub: ratios of the per-mode medians (one pair: plain ratios)."""
    by_mode = {mode: [r for r in results if r.mode == mode] for mode in ("pubsub", "xread")}
    if not all(by_mode.values()):
        return
    rounds = len(by_mode["xread"])
    label = "ratios" if rounds == 1 else f"ratios of medians over {rounds} rounds"
    print(f"\n== xread / pubsub ({label})")
    metrics = [
        ("delivered tokens/s", "delivered_tps"),
        ("latency p50", "p50_ms"),
        ("latency p99", "p99_ms"),
        ("live latency p50", "live_p50_ms"),
        ("live latency p99", "live_p99_ms"),
        ("worker CPU / token", "worker_cpu_us_per_token"),
        ("redis CPU", "redis_cpu_seconds"),
    ]
    for name, attr in metrics:
        pubsub = statistics.median(getattr(r, attr) for r in by_mode["pubsub"])
        xread = statistics.median(getattr(r, attr) for r in by_mode["xread"])
        ratio = f"{xread / pubsub:.2f}x" if pubsub else "n/a"
        print(f"{name:<20}{ratio:>8}   (pubsub {pubsub:.4g}, xread {xread:.4g})")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fanout",
        description="Benchmark run fan-out over two daphne workers: Redis pub/sub vs XREAD.",
    )
    parser.add_argument("--runs", type=int, default=40, help="concurrent runs (default 40)")
    parser.add_argument(
        "--subscribers", type=int, default=3, help="SSE subscribers per run (default 3)"
    )
    parser.add_argument("--tokens", type=int, default=100, help="tokens per run (default 100)")
    parser.add_argument("--tps", type=float, default=20, help="tokens/s per run (default 20)")
    parser.add_argument(
        "--fanout", choices=["pubsub", "xread", "both"], default="both",
        help="fan-out mechanism; both = pubsub then xread, fresh workers each (default)",
    )  # fmt: skip
    parser.add_argument(
        "--repeat", type=int, default=1,
        help="rounds per mode; with both, the order alternates pubsub/xread, xread/pubsub",
    )  # fmt: skip
    parser.add_argument(
        "--flush-ms", type=int, default=30, help="coalescing window per run (default 30)"
    )
    parser.add_argument(
        "--first-token-delay", type=float, default=1.0,
        help="seconds before each run's first token, so subscribers are connected (default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--timeout", type=float, default=30,
        help="seconds allowed beyond the expected stream duration (default 30)",
    )  # fmt: skip
    parser.add_argument(
        "--redis-url", default="redis://127.0.0.1:6379/9",
        help="Redis for the workers; its chat:* keys are deleted first (default db 9)",
    )  # fmt: skip
    parser.add_argument(
        "--pg-admin-url", default="postgres://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL URL used to drop and create the bench databases",
    )  # fmt: skip
    parser.add_argument(
        "--db-name", default="chat_bench",
        help="database name (dropped and recreated; <name>_template too)",
    )  # fmt: skip
    parser.add_argument(
        "--worker-env", action="append", default=[], metavar="NAME=VALUE",
        help="extra environment for the workers (repeatable), e.g. STREAM_CHECKPOINT_SECONDS=0",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if min(args.runs, args.subscribers, args.tokens, args.repeat) < 1 or args.tps <= 0:
        parser.error("--runs, --subscribers, --tokens, --repeat and --tps must be positive")
    return args


SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def clean_env() -> dict[str, str]:
    """This process's environment without the project's own settings, for the processes a
    benchmark starts (each is given the settings it measures)."""
    prefixes = ("REDIS_URL", "OPENAI_", "STREAM_", "DATABASE_URL", "AGENT_", "DJANGO_", "CHAT_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    env.update(DJANGO_SETTINGS_MODULE="chatproject.settings", PYTHONUNBUFFERED="1")
    return env


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def catch_signals() -> None:
    """Ctrl-C, TERM and HUP raise KeyboardInterrupt wherever the program is, even inside
    the event loop (asyncio.run's own SIGINT handling only cancels the main task, and a
    cancellation can be lost on Python 3.11), and so reach the caller's cleanup."""
    for sig in SIGNALS:
        signal.signal(sig, _interrupt)


def hold_signals() -> None:
    """Ignore them while the cleanup runs (`release_signals` after)."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def release_signals() -> None:
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_DFL)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.fanout == "both":  # alternate the order (ABBA...) so neither mode always goes first
        pairs = (["pubsub", "xread"], ["xread", "pubsub"])
        modes = [mode for r in range(args.repeat) for mode in pairs[r % 2]]
    else:
        modes = [args.fanout] * args.repeat
    base_env = clean_env()
    catch_signals()
    procs = Processes()
    logdir = Path(tempfile.mkdtemp(prefix="chat-bench-"))
    results: list[Result] = []
    try:
        limit, used = connection_headroom(args.pg_admin_url)
        # Each worker holds at most its pool (DATABASE_POOL_SIZE, 10 by default).
        needed = 2 * 10 + 5
        if needed > limit - used:
            print(
                f"warning: two workers need about {needed} PostgreSQL connections; the "
                f"server allows {limit} and {used} are in use",
                file=sys.stderr,
            )
        template = prepare_template(args, base_env)
        for mode in modes:
            tag = f"{len(results) + 1}-{mode}"
            results.append(run_mode(args, mode, template, base_env, procs, logdir, tag))
            report(results[-1])
        compare(results)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        hold_signals()  # let the cleanup finish
        procs.stop_all()
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
