"""Command line: `python -m bench.serving --help`. Sets up once (a migrated template
database, production settings with collected static files, the seed's virtualenv and
extracted examples), runs every selected system in turn, prints the tables, writes JSON,
and cleans up (processes, databases, Redis keys) however it ends."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from bench.fanout import (
    ROOT,
    Processes,
    catch_signals,
    clean_env,
    clear_redis,
    db_url,
    hold_signals,
    pg_admin,
    prepare_template,
    release_signals,
)
from bench.serving.report import details, idle_details, idle_table, summary, table
from bench.serving.scenarios import (
    ALIASES,
    IDLE_SYSTEMS,
    PROJECT_KINDS,
    SYSTEMS,
    Context,
    measure,
    measure_idle,
)
from bench.serving.systems import extract_seed, project_settings, seed_python


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.serving",
        description="Serving benchmark: the project (daphne) vs the seed's FastAPI examples "
        "vs the Agents SDK alone, on the stand-in OpenAI server.",
    )
    add = p.add_argument
    add("--systems",
        help=f"comma-separated, from {', '.join(SYSTEMS)} (default all but the baseline-* "
        "ones, which need --baseline; project-sse = project-seed-sse)")
    add("--streams", type=int, default=50, help="concurrent streams (default 50)")
    add("--tokens", type=int, default=150, help="tokens per reply (default 150)")
    add("--tps", type=float, default=20, help="tokens/s per reply (default 20)")
    add("--workers", default="1",
        help="daphne workers for the project systems, e.g. 1 or 2 or 1,2 (default 1); "
        "clients alternate between them")
    add("--rounds", type=int, default=1, help="repeat everything (default 1)")
    add("--first-token-delay", type=float, default=0.5,
        help="the stand-in's delay before each load reply's first token (default 0.5 s)")
    add("--probe-tokens", type=int, default=5,
        help="tokens of the cold/warm first replies (default 5)")
    add("--ramp", type=float, default=0.0,
        help="spread the streams' starts over this many seconds (default 0: all at once)")
    add("--timeout", type=float, default=60,
        help="seconds allowed beyond a reply's expected duration (default 60)")
    add("--idle-sockets", type=int, default=1000,
        help="idle WebSockets held on one process of project-ws / seed-ws, when selected "
        "(default 1000; 0: skip)")
    add("--idle-settle", type=float, default=3.0, help="seconds before reading RSS (default 3)")
    add("--idle-watch", type=float, default=5.0,
        help="seconds of idle CPU measured with the sockets open (default 5)")
    add("--seed-doc", type=Path, default=ROOT.parent / "shared" / "seed" / "streaming-examples.md",
        help="the seed document (default ../shared/seed/streaming-examples.md)")
    add("--redis-url", default="redis://127.0.0.1:6379/7",
        help="Redis for the project (its chat:* keys are deleted; default db 7)")
    add("--pg-admin-url", default="postgres://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL URL used to create and drop the bench databases")
    add("--db-name", default="bench_serving",
        help="database name, must start with bench_serving (<name>_template too)")
    add("--json", type=Path, help="write the results as JSON here")
    add("--profile", type=Path,
        help="record a py-spy profile (raw collapsed stacks) of each server process over "
        "the load into this directory; py-spy must be on PATH")
    add("--baseline", type=Path,
        help="another checkout of the project (say `git worktree add /tmp/before <commit>`), "
        "served by the baseline-* systems beside this one's, for a before/after within one "
        "invocation; it must have the same migrations and runs on this virtualenv")
    args = p.parse_args(argv)  # fmt: skip
    systems = args.systems or ",".join(s for s in SYSTEMS if not s.startswith("baseline-"))
    names = [ALIASES.get(s.strip(), s.strip()) for s in systems.split(",") if s.strip()]
    unknown = [s for s in names if s not in SYSTEMS]
    if unknown:
        p.error(f"unknown systems {unknown}; choose from {', '.join(SYSTEMS)}")
    args.system_list = names
    if any(n.startswith("baseline-") for n in names) and not (
        args.baseline and (args.baseline / "chatproject" / "asgi.py").is_file()
    ):
        p.error("the baseline-* systems need --baseline: a checkout of the project")
    if any(n.startswith("seed-") for n in names) and not args.seed_doc.is_file():
        p.error(f"the seed document {args.seed_doc} does not exist (--seed-doc)")
    args.worker_counts = [int(w) for w in args.workers.split(",")]
    if not args.db_name.startswith("bench_serving"):
        p.error("--db-name must start with bench_serving")
    if min(args.streams, args.tokens, args.rounds, args.probe_tokens, *args.worker_counts) < 1:
        p.error("--streams, --tokens, --rounds, --probe-tokens and --workers must be positive")
    return args


def raise_open_files(needed: int) -> None:
    """Enough descriptors for the clients here and (inherited) the servers."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def machine() -> dict[str, object]:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), "?",
    )  # fmt: skip
    git = lambda *a: subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout  # noqa: E731
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "commit": git("rev-parse", "HEAD").strip(),
        "uncommitted": git("status", "--porcelain").splitlines(),
        "command": " ".join(["python -m bench.serving", *sys.argv[1:]]),
        "loadavg_at_start": os.getloadavg(),
    }


def setup(ctx: Context) -> None:
    a = ctx.args
    if any(SYSTEMS[s][1] in PROJECT_KINDS for s in a.system_list):
        db_args = argparse.Namespace(pg_admin_url=a.pg_admin_url, db_name=a.db_name)
        ctx.db_args = db_args
        ctx.project_env = project_settings(ctx.tmp, ctx.base_env)
        ctx.template = prepare_template(db_args, ctx.project_env)
        served = {
            "DATABASE_URL": db_url(a.pg_admin_url, a.db_name), "REDIS_URL": a.redis_url,
            "OPENAI_API_KEY": "sk-test",
        }  # fmt: skip
        ctx.project_env.update(served)
        if a.baseline:
            ctx.baseline_env = {**project_settings(ctx.tmp / "baseline", ctx.base_env, a.baseline), **served}
    if any(SYSTEMS[s][1].startswith("example") for s in a.system_list):
        ctx.seed_python = seed_python()
        ctx.seed_apps = extract_seed(a.seed_doc, ctx.tmp)


def cleanup(ctx: Context) -> None:
    ctx.procs.stop_all()
    shutil.rmtree(ctx.tmp / "static", ignore_errors=True)  # collected files; logs stay
    shutil.rmtree(ctx.tmp / "baseline" / "static", ignore_errors=True)
    a = ctx.args
    if ctx.db_args is not None:
        with contextlib.suppress(Exception):
            pg_admin(
                a.pg_admin_url,
                f'DROP DATABASE IF EXISTS "{a.db_name}" WITH (FORCE)',
                f'DROP DATABASE IF EXISTS "{a.db_name}_template" WITH (FORCE)',
            )
        with contextlib.suppress(Exception):
            clear_redis(a.redis_url)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_open_files(max(4096, 4 * (args.idle_sockets + args.streams) + 1024))
    base_env = clean_env()
    catch_signals()  # reach the cleanup from anywhere
    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    ctx = Context(args, Processes(), tmp, tmp, base_env)
    info = machine()
    results, idles = [], []
    try:
        setup(ctx)
        for round_ in range(1, args.rounds + 1):
            for system in args.system_list:
                counts = args.worker_counts if SYSTEMS[system][1] in PROJECT_KINDS else [1]
                for workers in counts:
                    result = measure(ctx, system, workers, round_)
                    results.append(result)
                    print(details(result), flush=True)
            if args.idle_sockets:
                for system in (s for s in args.system_list if s in IDLE_SYSTEMS):
                    idles.append(measure_idle(ctx, system, round_))
                    print(idle_details(idles[-1]), flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        hold_signals()  # let the cleanup finish
        cleanup(ctx)
        release_signals()
    info["loadavg_at_end"] = os.getloadavg()
    print(f"\n== serving benchmark {info['date']}  {info['nproc']} x {info['cpu_model']}")
    print(f"   {args.streams} streams x {args.tokens} tokens at {args.tps:g} tokens/s; "
          f"logs in {ctx.logdir}\n")  # fmt: skip
    print(table(results))
    if across := summary(results):
        print(f"\nacross rounds (total CPU per token: worker + Redis + PostgreSQL)\n{across}")
    if idles:
        print(f"\nidle WebSockets ({args.idle_sockets} requested, one process)\n{idle_table(idles)}")
    notes = sorted({note for r in results for note in r.notes})
    for note in notes:
        print(f"note: {note}")
    if args.json:
        payload = {
            "machine": info, "args": {k: str(v) for k, v in vars(args).items()},
            "results": [asdict(r) for r in results], "idle": [asdict(r) for r in idles],
            "notes": notes,
        }  # fmt: skip
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
