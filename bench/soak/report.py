"""The soak's summary: tables (markdown, so they paste into docs/benchmarks.md as they
are) printed at the end, and every number as JSON (`--json`)."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import asdict
from typing import TYPE_CHECKING

from bench.serving.systems import log_problems
from bench.soak.checks import Check, Facts, phase

if TYPE_CHECKING:
    from bench.soak.load import Soak


def memory_rows(soak: Soak) -> list[dict]:
    return [{"process": s.label, **s.summary()} for s in soak.sampler.series.values() if s.samples]


def tallies(facts: Facts) -> dict:
    """The numbers of the report: statuses and errors of the runs, kinds, reconnections,
    stop and reap latencies, and what the checks counted on the way."""
    soak, replies = facts.soak, facts.replies
    out: dict = {"statuses": Counter(), "kinds": Counter(), "errors": Counter(), "views": 0,
                 "resumes": 0, "reads_broken": 0, **facts.counts}  # fmt: skip
    for sc in soak.scenarios:
        out["kinds"][sc.kind] += 1
        reply = replies.get(sc.run_id or "") or {}
        out["statuses"][reply.get("status", "not started")] += 1
        if reply.get("status") in ("failed", "interrupted"):
            out["errors"][f"{reply['status']}: {reply['error']}"] += 1
        for view in sc.views:
            out["views"] += 1
            out["resumes"] += len(view.hops) - 1
            out["reads_broken"] += len(view.troubles)
    out["stop_to_stopped_seconds"] = quantiles([
        sc.views[0].ended_at - sc.stop["acked_at"] for sc in soak.scenarios
        if sc.stop.get("acked") and sc.views[0].terminal == "stopped" and sc.views[0].ended_at
    ])  # fmt: skip
    killed = set(soak.killed.get("runs", []))
    out["kill_to_interrupted_seen_seconds"] = quantiles([
        v.ended_at - soak.killed["at"] for sc in soak.scenarios for v in sc.views
        if sc.run_id in killed and v.terminal == "interrupted" and v.ended_at
    ])  # fmt: skip
    return out


def quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    values = sorted(values)
    return {"n": len(values), "p50": round(statistics.median(values), 2),
            "max": round(values[-1], 2)}  # fmt: skip


def summary(soak: Soak, checks: list[Check], counts: dict, info: dict) -> str:
    a = soak.args
    lines = [
        f"== soak {info['date']}: {a.minutes:g} min, 2 workers, {info['nproc']} cores "
        f"({info['cpu_model']}), commit {info['commit'][:7]}"
        + (" + uncommitted changes" if info["uncommitted"] else ""),
        f"   {a.rate:g} starts/s (Poisson), at most {a.streams} scenarios at once, replies of "
        f"{a.tokens // 2}-{a.tokens * 3 // 2} tokens at {a.tps:g} tokens/s, {a.guests} guests; "
        f"load average {info['loadavg_at_start'][0]:.2f} at start",
        "",
        "| what happened | at (s) |",
        "| --- | --- |",
        *(f"| {name} | {t:.1f} |" for name, t in soak.timeline.items()),
        "",
        "| check | checked | failed | result |",
        "| --- | --- | --- | --- |",
        *(f"| {c.name} | {c.checked} | {len(c.failed)} | {'ok' if c.ok else 'FAILED'} |" for c in checks),
        "",
    ]
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(counts["kinds"].items()))
    statuses = ", ".join(f"{k} {n}" for k, n in sorted(counts["statuses"].items()))
    skipped = ", ".join(f"{n} ({why})" for why, n in soak.skipped.items()) or "none"
    peak = max((n for _, n in soak.registry_sizes), default=0)
    lines += [
        "| load | |",
        "| --- | --- |",
        f"| scenarios | {len(soak.scenarios)}: {kinds} |",
        f"| runs by final status | {statuses} |",
        *(f"| {n} x {why} | |" for why, n in sorted(counts["errors"].items())),
        f"| client reads (views) | {counts['views']}, with {counts['resumes']} reconnections "
        f"({counts['reads_broken']} after a broken read) |",
        f"| live runs in the registry | peak {peak} |",
        f"| starts not made | {skipped} |",
        f"| stop accepted -> `stopped` read | {fmt_q(counts['stop_to_stopped_seconds'])} |",
        f"| SIGKILL -> `interrupted` read | {fmt_q(counts['kill_to_interrupted_seen_seconds'])} |",
        f"| killed worker's live runs | {len(soak.killed.get('runs', []))} |",
        f"| runs live at the Redis restart | {len(soak.live_at_redis_restart)} |",
        f"| logs / log beginnings lost with Redis | {counts.get('logs lost with Redis', 0)} / "
        f"{counts.get('log beginnings lost with Redis', 0)} |",
        f"| client reads cut short by the Redis restart | "
        f"{counts.get('client reads cut short by Redis', 0)} |",
        f"| runs whose start failed (stored `failed`, no log) | "
        f"{counts.get('starts failed, no log', 0)} |",
        f"| clients of a failed start shown 410 | "
        f"{counts.get('clients of a failed start shown 410', 0)} |",
        f"| replies streaming after the load | {soak.streaming_left} "
        f"(after {soak.settle_seconds} s) |",
        "",
        "| answers by route | statuses |",
        "| --- | --- |",
    ]
    routes: dict[str, Counter[int]] = {}
    for (route, status), n in soak.traffic.statuses.items():
        routes.setdefault(route, Counter())[status] += n
    for route, statuses_ in sorted(routes.items()):
        lines.append(f"| {route} | " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses_.items())) + " |")
    lines += ["", "| process | seconds | RSS MiB start / peak / end | CPU s |", "| --- | --- | --- | --- |"]
    for row in memory_rows(soak):
        lines.append(
            f"| {row['process']} (pid {row['pid']}) | {row['from_s']:.0f}-{row['to_s']:.0f} | "
            f"{row['rss_start_mb']:.1f} / {row['rss_peak_mb']:.1f} / {row['rss_end_mb']:.1f} | "
            f"{row['cpu_seconds']:.1f} |"
        )
    marks = list(range(0, int(a.minutes * 60) + 1, 60 if a.minutes >= 2 else 15))
    lines += ["", "| process | RSS MiB at " + ", ".join(f"{m // 60}:{m % 60:02d}" for m in marks) + " |",
              "| --- | --- |"]  # fmt: skip
    for series in soak.sampler.series.values():
        at = [next((rss for t, rss, _ in series.samples if t >= m), None) for m in marks]
        shown = ", ".join("-" if v is None or m < series.samples[0][0] - 2 else f"{v:.0f}"
                          for m, v in zip(marks, at, strict=True))  # fmt: skip
        lines.append(f"| {series.label} | {shown} |")
    by_phase = Counter((phase(soak, t), f"{route}: {what.split(' (')[0][:90]}")
                       for t, route, what in soak.traffic.incidents)  # fmt: skip
    lines += ["", "| client-side failures (resumed) | phase | count |", "| --- | --- | --- |"]
    for (where, what), n in sorted(by_phase.items(), key=lambda item: -item[1])[:15]:
        lines.append(f"| {what} | {where} | {n} |")
    problems = log_problems(soak.cluster.logs(), limit=10)
    lines += ["", f"worker log lines with WARNING/ERROR/Traceback (top {len(problems)}):"]
    lines += [f"  {p}" for p in problems]
    for c in checks:
        if not c.ok:
            lines += ["", f"FAILED: {c.name} ({len(c.failed)}):"]
            lines += [f"  {f}" for f in c.examples()]
    return "\n".join(lines)


def fmt_q(q: dict) -> str:
    return f"p50 {q['p50']} s, max {q['max']} s (n={q['n']})" if q else "n/a"


def payload(soak: Soak, checks: list[Check], counts: dict, info: dict) -> dict:
    """Everything, for `--json`."""
    return {
        "machine": info,
        "args": {k: str(v) for k, v in vars(soak.args).items()},
        "timeline": soak.timeline,
        "checks": [{"name": c.name, "checked": c.checked, "failed": len(c.failed), "ok": c.ok,
                    "failures": c.examples()} for c in checks],  # fmt: skip
        "counts": counts,
        "skipped": soak.skipped,
        "statuses": [{"route": r, "status": s, "count": n} for (r, s), n in sorted(soak.traffic.statuses.items())],
        "incidents": [{"t": t, "phase": phase(soak, t), "route": r, "what": w}
                      for t, r, w in soak.traffic.incidents[:2000]],  # fmt: skip
        "memory": memory_rows(soak),
        "memory_series": {s.label: s.samples for s in soak.sampler.series.values()},
        "registry_sizes": soak.registry_sizes,
        "killed": soak.killed,
        "live_at_redis_restart": soak.live_at_redis_restart,
        "settle_seconds": soak.settle_seconds,
        "streaming_left": soak.streaming_left,
        "scenarios": [
            {**{k: v for k, v in asdict(sc).items() if k != "views"},
             "views": [{k: v for k, v in asdict(view).items() if k not in ("parts", "seqs")}
                       | {"events": len(view.seqs)} for view in sc.views]}
            for sc in soak.scenarios
        ],  # fmt: skip
        "worker_log_problems": log_problems(soak.cluster.logs(), limit=50),
    }
