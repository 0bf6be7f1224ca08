"""Results: one `Result` per system and load, one `IdleResult` per idle-socket measurement,
summarized from the clients' streams, printed as a table and written as JSON."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from bench.fanout import percentile
from bench.serving.clients import Stream

ENDED_WELL = {"completed", "eof", "last token"}  # the seed's streams have no terminal event


@dataclass
class Result:
    system: str
    workers: int
    streams: int
    tokens: int
    tps: float
    round: int
    failed_streams: int = 0
    expected_tokens: int = 0
    received_tokens: int = 0
    lost: int = 0  # token indices missing, over all streams
    duplicated: int = 0
    latency_p50_ms: float = 0.0  # stand-in send stamp -> client read, every token
    latency_p99_ms: float = 0.0
    latency_max_ms: float = 0.0
    ttft_p50_ms: float = 0.0  # client: request sent -> first token read (incl. the delay)
    ttft_p99_ms: float = 0.0
    ttft_overhead_p50_ms: float = 0.0  # client's first token - stand-in's first send stamp
    ttft_overhead_p99_ms: float = 0.0
    wall_seconds: float = 0.0  # first request sent -> last stream ended
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # server, redis, postgres, ...
    worker_us_per_token: float = 0.0
    total_us_per_token: float = 0.0  # + redis + postgres (project only)
    rss_mb: list[float] = field(default_factory=list)  # per server process, after the load
    peak_rss_mb: list[float] = field(default_factory=list)
    cold_first_token_ms: float | None = None  # request -> first token, fresh process
    warm_first_token_ms: float | None = None
    cold_overhead_ms: float | None = None  # the same, minus the stand-in's send stamp
    warm_overhead_ms: float | None = None
    errors: dict[str, int] = field(default_factory=dict)
    endings: dict[str, int] = field(default_factory=dict)
    log_problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)


@dataclass
class IdleResult:
    system: str
    round: int
    requested: int
    opened: int = 0
    rss_before_mb: float = 0.0
    rss_after_mb: float = 0.0
    rss_closed_mb: float = 0.0  # after the clients closed them and a settle
    kib_per_socket: float = 0.0
    idle_cpu_seconds: float = 0.0  # server CPU while the sockets sat idle
    idle_seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    log_problems: list[str] = field(default_factory=list)


def count(kinds: dict[str, int], key: str) -> None:
    kinds[key] = kinds.get(key, 0) + 1


def first_token(stream: Stream) -> tuple[float | None, float | None]:
    """(request -> first token, first token's read - its send stamp), seconds."""
    if 0 not in stream.indices:
        return None, None
    i = stream.indices.index(0)
    return stream.received[i] - stream.requested_at, stream.received[i] - stream.stamps[i]


def ms(value: float | None) -> float | None:
    return None if value is None else value * 1000


def summarize(
    result: Result, streams: list[Stream], started: float, ended: float,
    cpu: dict[str, float], project: bool,
) -> None:  # fmt: skip
    latencies, overheads, ttfts = [], [], []
    for stream in streams:
        seen = set(stream.indices)
        missing = len(set(range(result.tokens)) - seen)
        result.lost += missing
        result.duplicated += len(stream.indices) - len(seen)
        result.received_tokens += len(stream.indices)
        count(result.endings, stream.terminal or "none")
        if stream.error:
            count(result.errors, stream.error[:200])
        if stream.error or stream.terminal not in ENDED_WELL or missing:
            result.failed_streams += 1
        latencies += [r - s for r, s in zip(stream.received, stream.stamps, strict=True)]
        ttft, overhead = first_token(stream)
        if overhead is not None:
            overheads.append(overhead)
            ttfts.append(ttft)
    latencies.sort()
    overheads.sort()
    ttfts.sort()
    result.expected_tokens = result.streams * result.tokens
    result.latency_p50_ms = percentile(latencies, 50) * 1000
    result.latency_p99_ms = percentile(latencies, 99) * 1000
    result.latency_max_ms = (latencies[-1] if latencies else float("nan")) * 1000
    result.ttft_p50_ms = percentile(ttfts, 50) * 1000
    result.ttft_p99_ms = percentile(ttfts, 99) * 1000
    result.ttft_overhead_p50_ms = percentile(overheads, 50) * 1000
    result.ttft_overhead_p99_ms = percentile(overheads, 99) * 1000
    result.wall_seconds = ended - started
    result.cpu_seconds = cpu
    tokens = result.received_tokens or float("nan")  # nothing delivered: no per-token cost
    result.worker_us_per_token = cpu["server"] / tokens * 1e6
    services = cpu.get("redis", 0.0) + cpu.get("postgres", 0.0) if project else 0.0
    result.total_us_per_token = (cpu["server"] + services) / tokens * 1e6


def probe(result: Result, cold: Stream, warm: Stream) -> None:
    for name, stream in (("cold", cold), ("warm", warm)):
        total, overhead = first_token(stream)
        setattr(result, f"{name}_first_token_ms", ms(total))
        setattr(result, f"{name}_overhead_ms", ms(overhead))
        if stream.error:
            count(result.errors, f"{name} probe: {stream.error[:200]}")


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{value:,.{digits}f}"


COLUMNS = [
    ("round", 5), ("system", 18), ("w", 1), ("streams", 7), ("failed", 6), ("lost/dup", 8),
    ("p50 ms", 6), ("p99 ms", 6), ("TTFT p50/p99", 12), ("TTFT+ p50/p99", 13), ("wall s", 6),
    ("worker us/tok", 13), ("total us/tok", 12), ("x floor", 7), ("x seed", 6),
    ("RSS MiB after/peak", 18), ("1st tok cold/warm ms", 20),
]  # fmt: skip


def paired(results: list[Result], r: Result, system: str, *, same_workers: bool = False) -> Result | None:
    """`system`'s result in `r`'s round under `r`'s load (and worker count, if asked)."""
    return next(
        (o for o in results if o.system == system and o.round == r.round and o.streams == r.streams
         and (o.workers == r.workers or not same_workers)),
        None,
    )  # fmt: skip


def table(results: list[Result]) -> str:
    """One row per result; `x floor` / `x seed`: worker CPU per token over the SDK floor's
    and the seed's (Example 1 for SSE paths, 2 for WebSocket) in the same round and load."""
    lines = [
        " | ".join(name.ljust(width) for name, width in COLUMNS),
        "-+-".join("-" * width for _, width in COLUMNS),
    ]
    for r in results:
        floor = paired(results, r, "sdk-floor")
        seed = paired(results, r, seed_of(r.system))
        cells = [
            str(r.round), r.system, str(r.workers), str(r.streams), str(r.failed_streams),
            f"{r.lost}/{r.duplicated}", fmt(r.latency_p50_ms), fmt(r.latency_p99_ms),
            f"{fmt(r.ttft_p50_ms)}/{fmt(r.ttft_p99_ms)}",
            f"{fmt(r.ttft_overhead_p50_ms)}/{fmt(r.ttft_overhead_p99_ms)}", fmt(r.wall_seconds, 1),
            fmt(r.worker_us_per_token), fmt(r.total_us_per_token),
            fmt(r.worker_us_per_token / floor.worker_us_per_token, 1) if floor else "-",
            fmt(r.worker_us_per_token / seed.worker_us_per_token, 1) if seed else "-",
            "+".join(fmt(v) for v in r.rss_mb) + "/" + "+".join(fmt(v) for v in r.peak_rss_mb),
            f"{fmt(r.cold_first_token_ms)}/{fmt(r.warm_first_token_ms)}",
        ]  # fmt: skip
        lines.append(" | ".join(c.ljust(w) for c, (_, w) in zip(cells, COLUMNS, strict=True)))
    return "\n".join(lines)


def seed_of(system: str) -> str:
    return "seed-ws" if system.endswith("ws") else "seed-sse"


def spread(ratios: list[float]) -> str:
    """The median of `ratios`, their range, and each of them."""
    return (
        f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}): "
        + ", ".join(f"{x:.2f}" for x in ratios)
    )


def summary(results: list[Result]) -> str:
    """Over the rounds, per system and load: the median of each round's ratio of total CPU
    per token (worker, plus Redis and PostgreSQL for the project) to the seed's in that
    round, with the range; and, with `--baseline`, of this checkout's to the baseline's.
    This machine's own speed moves between rounds (the seed's CPU per token by 20-40 %), so
    each round's ratio pairs measurements taken close together and the median keeps one
    disturbed round from deciding."""
    if len({r.round for r in results}) < 2:
        return ""
    lines = ["system             | w | streams | total us/tok median (range) | x seed median (range), per round"]
    against_baseline = []
    keys = sorted({(r.system, r.workers, r.streams) for r in results if not r.system.startswith(("seed", "sdk"))})
    for system, workers, streams in keys:
        own = [r for r in results if (r.system, r.workers, r.streams) == (system, workers, streams)]
        to_seed = [
            r.total_us_per_token / seed.total_us_per_token
            for r in own if (seed := paired(results, r, seed_of(system))) and seed.total_us_per_token
        ]
        costs = sorted(r.total_us_per_token for r in own)
        lines.append(
            f"{system:<18} | {workers} | {streams:<7} | "
            f"{statistics.median(costs):,.0f} ({costs[0]:,.0f}-{costs[-1]:,.0f})".ljust(56)
            + f" | {spread(to_seed) if to_seed else '-'}"
        )
        baseline = system.replace("project-", "baseline-", 1)
        to_baseline = [
            r.total_us_per_token / b.total_us_per_token
            for r in own if (b := paired(results, r, baseline, same_workers=True)) and b.total_us_per_token
        ]
        if system.startswith("project-") and to_baseline:
            against_baseline.append(f"{system} / baseline (w {workers}, {streams} streams): median {spread(to_baseline)}")
    return "\n".join(lines + against_baseline)


def idle_table(results: list[IdleResult]) -> str:
    lines = [
        "round | system      | sockets open | RSS MiB before -> after | KiB/socket | idle CPU s"
        "   | RSS MiB after closing"
    ]
    for r in results:
        lines.append(
            f"{r.round:<5} | {r.system:<11} | {r.opened:>5} of {r.requested:<5}| "
            f"{r.rss_before_mb:8.1f} -> {r.rss_after_mb:<8.1f}     | {r.kib_per_socket:10.1f} | "
            f"{r.idle_cpu_seconds:.2f} in {r.idle_seconds:.0f} s | {r.rss_closed_mb:.1f}"
        )
    return "\n".join(lines)


def details(r: Result) -> str:
    cpu = ", ".join(f"{k} {v:.2f}" for k, v in r.cpu_seconds.items())
    out = [
        f"  round {r.round} {r.system} (workers {r.workers}): {r.received_tokens} of "
        f"{r.expected_tokens} tokens; endings {r.endings}; CPU s: {cpu}",
    ]
    out += [f"    {n} x {e}" for e, n in sorted(r.errors.items(), key=lambda kv: -kv[1])[:6]]
    out += [f"    server log: {line}" for line in r.log_problems[:5]]
    return "\n".join(out)


def idle_details(r: IdleResult) -> str:
    out = [
        f"  round {r.round} idle {r.system}: {r.opened} of {r.requested} sockets open, RSS "
        f"{r.rss_before_mb:.1f} -> {r.rss_after_mb:.1f} MiB = {r.kib_per_socket:.1f} KiB each; "
        f"{r.rss_closed_mb:.1f} MiB after closing them",
    ]
    out += [f"    {n} x {e}" for e, n in r.errors.items()]
    out += [f"    server log: {line}" for line in r.log_problems[:5]]
    return "\n".join(out)
