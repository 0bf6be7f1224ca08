"""One measurement: start a system fresh (with its own stand-in), time a cold and a warm
first reply, run the concurrent load while metering CPU, read memory, stop everything.
And the idle-socket measurement: RSS before and after holding N idle WebSockets."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.fanout import ROOT, Processes, clear_redis, fresh_database
from bench.serving.clients import Client, Stream, guests, open_idle, run_streams
from bench.serving.report import IdleResult, Result, count, probe, summarize
from bench.serving.systems import (
    Meter,
    Server,
    log_problems,
    rss_mb,
    start_project,
    start_seed,
    start_standin,
)
from tests.standin import Reply, control_script

# system -> (client path, which server)
SYSTEMS = {
    "project-seed-sse": ("seed-sse", "project"),
    "project-native-sse": ("native-sse", "project"),
    "project-ws": ("websocket", "project"),
    "baseline-seed-sse": ("seed-sse", "baseline"),
    "baseline-native-sse": ("native-sse", "baseline"),
    "baseline-ws": ("websocket", "baseline"),
    "seed-sse": ("seed-sse", "example1"),
    "seed-ws": ("websocket", "example2"),
    "sdk-floor": ("", "floor"),
}
ALIASES = {"project-sse": "project-seed-sse", "project-native": "project-native-sse"}
IDLE_SYSTEMS = ("project-ws", "baseline-ws", "seed-ws")
PROJECT_KINDS = ("project", "baseline")  # this checkout, and `--baseline`'s


@dataclass
class Context:
    args: argparse.Namespace
    procs: Processes
    logdir: Path
    tmp: Path
    base_env: dict[str, str]
    project_env: dict[str, str] = field(default_factory=dict)
    baseline_env: dict[str, str] = field(default_factory=dict)
    template: str = ""
    db_args: argparse.Namespace | None = None  # for bench.fanout's database helpers
    seed_python: Path | None = None
    seed_apps: dict[int, tuple[str, list[str]]] = field(default_factory=dict)

    def session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)
        return aiohttp.ClientSession(connector=connector, timeout=timeout)

    @property
    def budget(self) -> float:
        a = self.args
        return a.first_token_delay + a.tokens / a.tps + a.timeout


def script_standin(ctx: Context, url: str, probes: int) -> None:
    """`probes` short replies (the cold/warm first replies), then the load's reply."""
    a = ctx.args
    short = Reply(tokens=["p"] * a.probe_tokens, tps=a.tps, stamp_tokens=True)
    load = Reply(
        tokens=["x"] * a.tokens, tps=a.tps, stamp_tokens=True, first_token_delay=a.first_token_delay
    )
    control_script(url, *[short] * probes, default=load)


def start_server(ctx: Context, kind: str, workers: int, standin: str, tag: str) -> Server:
    if kind in PROJECT_KINDS:
        fresh_database(ctx.db_args, ctx.template)
        clear_redis(ctx.args.redis_url)
        baseline = kind == "baseline"
        env = {**(ctx.baseline_env if baseline else ctx.project_env), "OPENAI_BASE_URL": standin}
        root = ctx.args.baseline if baseline else ROOT
        return start_project(ctx.procs, env, workers, ctx.logdir, tag, root)
    example = 1 if kind == "example1" else 2
    app, notes = ctx.seed_apps[example]
    env = {**ctx.base_env, "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": standin}
    server = start_seed(ctx.procs, ctx.seed_python, ctx.tmp, app, env, ctx.logdir / f"{tag}.log")
    server.notes = notes
    return server


def measure(ctx: Context, system: str, workers: int, round_: int) -> Result:
    a = ctx.args
    path, kind = SYSTEMS[system]
    workers = workers if kind in PROJECT_KINDS else 1
    result = Result(system, workers, a.streams, a.tokens, a.tps, round_)
    tag = f"r{round_}-{system}-w{workers}-n{a.streams}"
    log = ctx.logdir / f"{tag}-standin.log"
    standin, standin_pid = start_standin(ctx.procs, ctx.base_env, log)
    try:
        if kind == "floor":
            return floor(ctx, result, standin, standin_pid, tag)
        script_standin(ctx, standin, probes=2 + workers - 1)
        server = start_server(ctx, kind, workers, standin, tag)
        result.notes += server.notes
        result.logs = [str(p) for p in server.logs]
        try:
            asyncio.run(drive(ctx, result, server, path, kind, standin_pid))
        finally:
            for proc in server.procs:
                ctx.procs.stop(proc)
        result.log_problems = log_problems(server.logs)
    finally:
        ctx.procs.stop_all()  # the stand-in (and anything left)
    return result


async def drive(
    ctx: Context, result: Result, server: Server, path: str, kind: str, standin_pid: int
) -> None:
    a, project = ctx.args, kind in PROJECT_KINDS
    terminal_event = project  # the seed's WebSocket sends no terminal event
    async with ctx.session() as http:
        bases = server.bases
        if project:
            probes = await guests(http, [bases[0], bases[0], *bases[1:]], len(bases) + 1)
        else:
            probes = [Client(bases[0]), Client(bases[0])]
        # The first reply of the fresh process, a warm one, and one on each other worker.
        done = []
        for client in probes:
            streams, _, _ = await run_streams(
                http, path, [client], a.probe_tokens, ctx.budget, terminal_event=terminal_event
            )
            done.append(streams[0])
        probe(result, done[0], done[1])
        if project:
            clients = await guests(http, bases, a.streams)
        else:
            clients = [Client(bases[i % len(bases)], worker=i % len(bases)) for i in range(a.streams)]
        meter = Meter(server.pids, a.db_name if project else None, {"standin": standin_pid})
        stop = asyncio.Event()
        profilers = start_profilers(ctx, server.pids, result) if a.profile else []
        meter.start()
        sampler = asyncio.create_task(meter.sampling(stop))
        streams, started, ended = await run_streams(
            http, path, clients, a.tokens, ctx.budget, terminal_event=terminal_event, ramp=a.ramp
        )
        for profiler in profilers:
            profiler.send_signal(2)  # py-spy writes its profile on SIGINT
        stop.set()
        await sampler
        cpu = meter.stop()
        for profiler in profilers:
            profiler.wait(timeout=60)
        memory = [rss_mb(pid) for pid in server.pids]
    result.rss_mb = [rss for rss, _ in memory]
    result.peak_rss_mb = [peak for _, peak in memory]
    summarize(result, streams, started, ended, cpu, project)


def start_profilers(ctx: Context, pids: list[int], result: Result) -> list[subprocess.Popen]:
    """`py-spy record` on each server process over the load (`--profile DIR`): collapsed
    stacks (py-spy's raw format) of the threads holding the GIL, a file per process, named
    after the measurement. py-spy's own sampling costs CPU, so
    a profiled measurement's CPU numbers are not comparable with unprofiled ones."""
    out = ctx.args.profile
    out.mkdir(parents=True, exist_ok=True)
    tag = f"r{result.round}-{result.system}-w{result.workers}-n{result.streams}"
    procs = []
    for index, pid in enumerate(pids):
        path = out / f"{tag}-{index}.txt"
        procs.append(subprocess.Popen(
            ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--rate", "200",
             "--output", str(path), "--nonblocking", "--gil"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        result.notes.append(f"profiled: {path}")
    return procs


def floor(ctx: Context, result: Result, standin: str, standin_pid: int, tag: str) -> Result:
    """The SDK alone: bench/serving/floor.py in its own process, on the stand-in."""
    a = ctx.args
    script_standin(ctx, standin, probes=2)
    out = ctx.logdir / f"{tag}.json"
    env = {
        **ctx.base_env, "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": standin,
        "OPENAI_AGENTS_DISABLE_TRACING": "1",
    }  # fmt: skip
    meter = Meter([], None, {"standin": standin_pid})
    meter.start()
    proc = ctx.procs.start(
        [sys.executable, "-m", "bench.serving.floor", "--streams", str(a.streams),
         "--budget", str(ctx.budget), "--out", str(out)],
        env, ctx.logdir / f"{tag}.log",
    )  # fmt: skip
    try:
        proc.wait(timeout=ctx.budget * 3 + 60)
    except subprocess.TimeoutExpired:
        ctx.procs.stop(proc)
    cpu = meter.stop()
    if proc.returncode != 0 or not out.exists():
        count(result.errors, f"floor process failed: see {ctx.logdir / f'{tag}.log'}")
        return result
    data = json.loads(out.read_text())

    def stream(record: dict) -> Stream:
        fields = {k: record[k] for k in ("indices", "stamps", "received", "terminal", "error")}
        return Stream(record["run"], 0, requested_at=record["requested_at"], **fields)

    probe(result, stream(data["probes"]["cold"]), stream(data["probes"]["warm"]))
    streams = [stream(r) for r in data["streams"]]
    # The standin's CPU here spans the whole process (probes included).
    cpu = {"seconds": data["ended"] - data["started"], "server": data["cpu"], "standin": cpu["standin"]}
    summarize(result, streams, data["started"], data["ended"], cpu, project=False)
    result.rss_mb, result.peak_rss_mb = [data["rss_mb"]], [data["peak_rss_mb"]]
    result.notes.append("SDK floor: Runner.run_streamed in one process, no server, no client")
    return result


def measure_idle(ctx: Context, system: str, round_: int) -> IdleResult:
    """Hold `--idle-sockets` idle WebSockets on one fresh process; RSS delta per socket."""
    a = ctx.args
    kind = SYSTEMS[system][1]
    result = IdleResult(system, round_, a.idle_sockets)
    tag = f"r{round_}-idle-{system}"
    standin, _ = start_standin(ctx.procs, ctx.base_env, ctx.logdir / f"{tag}-standin.log")
    try:
        server = start_server(ctx, kind, 1, standin, tag)
        asyncio.run(hold_idle(ctx, result, server, kind in PROJECT_KINDS))
        result.log_problems = log_problems(server.logs)
    finally:
        ctx.procs.stop_all()
    return result


async def hold_idle(ctx: Context, result: IdleResult, server: Server, project: bool) -> None:
    pid, base = server.pids[0], server.bases[0]
    async with ctx.session() as http:
        if project:  # browser tabs: up to 20 guests' sessions, several tabs each
            sessions = await guests(http, [base], min(20, result.requested))
        else:
            sessions = [Client(base)]
        # Warm up: the first connections' one-off costs (imports, pools) are not per socket.
        warm, _ = await open_idle(http, sessions[:10])
        await asyncio.gather(*(ws.close() for ws in warm))
        await asyncio.sleep(1)
        before = rss_mb(pid)[0]
        clients = [sessions[i % len(sessions)] for i in range(result.requested)]
        sockets, errors = await open_idle(http, clients)
        for error in errors:
            count(result.errors, error[:200])
        result.opened = len(sockets)
        await asyncio.sleep(ctx.args.idle_settle)
        after = rss_mb(pid)[0]
        meter = Meter([pid], None, {})
        meter.start()
        t0 = time.monotonic()
        await asyncio.sleep(ctx.args.idle_watch)
        result.idle_cpu_seconds = meter.stop()["server"]
        result.idle_seconds = time.monotonic() - t0
        closed = sum(1 for ws in sockets if ws.closed)
        if closed:
            count(result.errors, f"{closed} sockets closed by the server while idle")
        await asyncio.wait_for(
            asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True), 30
        )
    await asyncio.sleep(ctx.args.idle_settle)  # the server handles the closes
    result.rss_closed_mb = rss_mb(pid)[0]
    result.rss_before_mb, result.rss_after_mb = before, after
    result.kib_per_socket = (after - before) * 1024 / max(1, result.opened)
