"""Command line: `python -m bench.soak --help`. Sets up (production settings with collected
static files, a database cloned from a freshly migrated template, a private Redis, the
stand-in, two workers), runs the soak, checks, prints the summary, writes JSON, and
cleans up (processes, databases) however it ends. Exit status 1 if a check failed."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.fanout import (
    ROOT,
    Processes,
    catch_signals,
    clean_env,
    fresh_database,
    hold_signals,
    pg_admin,
    prepare_template,
    release_signals,
)
from bench.serving.systems import project_settings
from bench.soak.checks import verify
from bench.soak.clients import Traffic
from bench.soak.cluster import Cluster, Sampler
from bench.soak.load import Soak, drive
from bench.soak.report import payload, summary, tallies
from tests.standin import Reply, control_script


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description="Soak test: mixed load on two daphne workers, a worker SIGKILLed and "
        "restarted and Redis restarted midway, then every reply checked against the "
        "database and its event log. Uses a private redis-server and its own databases "
        "on the PostgreSQL server; all traffic stays on 127.0.0.1.",
    )
    add = p.add_argument
    add("--minutes", type=float, default=10, help="how long the load runs (default 10)")
    add("--rate", type=float, default=2.0, help="runs started per second, Poisson (default 2)")
    add("--streams", type=int, default=30,
        help="at most this many scenarios at once (each reads one run, some with two "
        "connections; default 30)")
    add("--tokens", type=int, default=120,
        help="average reply length in tokens; each reply is 0.5-1.5 times it (default 120)")
    add("--tps", type=float, default=15, help="the stand-in's tokens per second (default 15)")
    add("--first-token-delay", type=float, default=0.3, help="before each reply (default 0.3 s)")
    add("--guests", type=int, default=40,
        help="guest users the clients share, created first (default 40)")
    add("--poll-share", type=float, default=0.2,
        help="share of native-API clients that poll instead of SSE (default 0.2)")
    add("--kill-at", type=float, default=0.4,
        help="when to SIGKILL a worker, as a fraction of --minutes (default 0.4)")
    add("--restart-after", type=float, default=5,
        help="seconds before the killed worker is started again (default 5)")
    add("--redis-at", type=float, default=0.7,
        help="when to restart Redis, as a fraction of --minutes (default 0.7)")
    add("--redis-down", type=float, default=1.0, help="seconds Redis stays down (default 1)")
    add("--settle", type=float, default=45,
        help="seconds to wait after the load for every reply to end (default 45)")
    add("--seed", type=int, default=1, help="random seed for the mix (default 1)")
    add("--pg-admin-url", default="postgres://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL URL used to create and drop the soak's databases")
    add("--db-name", default="bench_soak",
        help="database name, must start with bench_soak (<name>_template too)")
    add("--json", type=Path, help="write every number as JSON here")
    args = p.parse_args(argv)  # fmt: skip
    if not args.db_name.startswith("bench_soak"):
        p.error("--db-name must start with bench_soak")
    if min(args.minutes, args.rate, args.streams, args.tokens, args.tps, args.guests) <= 0:
        p.error("--minutes, --rate, --streams, --tokens, --tps and --guests must be positive")
    if not 0 < args.kill_at < args.redis_at < 1:
        p.error("need 0 < --kill-at < --redis-at < 1")
    return args


def machine() -> dict[str, object]:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), "?",
    )  # fmt: skip

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout

    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
        "commit": git("rev-parse", "HEAD").strip() or "unknown (not a git checkout)",
        "uncommitted": git("status", "--porcelain", "--untracked-files=no").splitlines(),
        "command": " ".join(["python -m bench.soak", *sys.argv[1:]]),
        "loadavg_at_start": os.getloadavg(),
    }


def script_standin(args: argparse.Namespace, url: str, rng: random.Random) -> None:
    """Every reply stamped (token i is `"<i>:<time> "`), of random length around --tokens;
    enough queued for the whole soak, then the average one."""
    def reply(tokens: int) -> Reply:
        return Reply(tokens=["x"] * tokens, tps=args.tps, stamp_tokens=True,
                     first_token_delay=args.first_token_delay)  # fmt: skip

    count = int(args.rate * args.minutes * 60 * 1.3) + 50
    low, high = max(2, args.tokens // 2), args.tokens * 3 // 2
    replies = [reply(rng.randint(low, high)) for _ in range(count)]
    for start in range(0, count, 100):  # the stand-in takes request bodies of up to 1 MiB
        control_script(url, *replies[start : start + 100])
    control_script(url, default=reply(args.tokens))


def setup(args: argparse.Namespace, cluster: Cluster) -> None:
    db_args = argparse.Namespace(pg_admin_url=args.pg_admin_url, db_name=args.db_name)
    env = project_settings(cluster.logdir, cluster.base_env)
    template = prepare_template(db_args, env)
    cluster.start_redis()
    standin, _ = cluster.start_standin()
    script_standin(args, standin, random.Random(args.seed))
    cluster.worker_env = {
        **env,
        "DATABASE_URL": fresh_database(db_args, template),
        "REDIS_URL": cluster.redis_url,
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": standin,
        "OPENAI_AGENTS_DISABLE_TRACING": "1",  # nothing leaves 127.0.0.1
    }
    for index in (0, 1):
        cluster.start_worker(index)


def cleanup(args: argparse.Namespace, procs: Processes, tmp: Path, cluster: Cluster | None) -> None:
    if cluster is not None:
        cluster.stop_workers()
    procs.stop_all()
    shutil.rmtree(tmp / "static", ignore_errors=True)  # collected files; logs stay
    with contextlib.suppress(Exception):
        pg_admin(
            args.pg_admin_url,
            f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)',
            f'DROP DATABASE IF EXISTS "{args.db_name}_template" WITH (FORCE)',
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base_env = clean_env()
    catch_signals()  # reach the cleanup from anywhere
    procs = Processes()
    tmp = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    info = machine()
    print(f"soak: logs in {tmp}", flush=True)
    cluster: Cluster | None = None
    try:
        cluster = Cluster(procs, tmp, base_env)
        setup(args, cluster)
        t0 = time.time()
        soak = Soak(args, cluster, cluster.worker_env["DATABASE_URL"], t0, random.Random(args.seed),
                    Traffic(t0), Sampler(cluster, t0))  # fmt: skip
        asyncio.run(drive(soak))
        checks, facts = verify(soak)
        counts = tallies(facts)
        info["loadavg_at_end"] = os.getloadavg()
        print("\n" + summary(soak, checks, counts, info), flush=True)
        if args.json:
            args.json.write_text(json.dumps(payload(soak, checks, counts, info), indent=1, default=str))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        hold_signals()  # let the cleanup finish
        cleanup(args, procs, tmp, cluster)
        release_signals()
    print(f"\nlogs: {tmp}")
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
