"""The soak's processes: a private redis-server, the stand-in OpenAI server and two daphne
workers, each restartable in place (a worker: SIGKILL, then a new process on the same
port; Redis: stopped and started again on its port, coming back empty as it has no
persistence); and a sampler of their memory and CPU over time."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from bench.fanout import Processes, cpu_seconds, free_port, wait_healthy
from bench.serving.systems import rss_mb, start_standin


@dataclass
class Proc:
    """One restartable process: `generation` counts its starts (1, 2, ...)."""

    name: str  # worker1, worker2, redis
    port: int
    proc: subprocess.Popen[bytes] | None = None
    generation: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def label(self) -> str:
        """The process now running: `worker1`, then `worker1 (2nd process)` after a restart."""
        return self.name if self.generation <= 1 else f"{self.name} (process {self.generation})"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Cluster:
    """Redis, the stand-in and the workers, all children of `procs` (stopped on exit)."""

    def __init__(self, procs: Processes, logdir: Path, base_env: dict[str, str]) -> None:
        self.procs, self.logdir, self.base_env = procs, logdir, base_env
        self.redis = Proc("redis", free_port())
        self.workers = [Proc(f"worker{n}", free_port()) for n in (1, 2)]
        self.worker_env: dict[str, str] = {}

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis.port}/0"

    @property
    def bases(self) -> list[str]:
        return [w.base for w in self.workers]

    # Redis: private, no persistence, in the log directory (nothing else uses it).
    def start_redis(self) -> None:
        r = self.redis
        r.generation += 1
        r.proc = self.procs.start(
            ["redis-server", "--port", str(r.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.logdir)],
            self.base_env, self.logdir / f"redis-{r.generation}.log",
        )  # fmt: skip
        client = redis.Redis.from_url(self.redis_url, socket_timeout=1)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        return
                if not r.alive():
                    break
                time.sleep(0.05)
        finally:
            client.close()
        raise RuntimeError(f"redis-server on port {r.port} did not start")

    def restart_redis(self, down: float) -> tuple[float, float]:
        """Stop Redis (SIGTERM; without persistence it keeps nothing), wait `down` seconds,
        start it again on the same port. When it stopped and when it answered again."""
        assert self.redis.proc is not None
        self.procs.stop(self.redis.proc)
        stopped = time.time()
        time.sleep(down)
        self.start_redis()
        return stopped, time.time()

    def start_standin(self) -> tuple[str, int]:
        """The stand-in OpenAI server: its base URL (`.../v1`) and pid."""
        return start_standin(self.procs, self.base_env, self.logdir / "standin.log")

    # The workers: `python -m chatproject.serve`, as the image and bench/serving run them.
    def start_worker(self, index: int) -> None:
        w = self.workers[index]
        w.generation += 1
        log = self.logdir / f"{w.name}-{w.generation}.log"
        w.proc = self.procs.start(
            [sys.executable, "-m", "chatproject.serve", "-b", "127.0.0.1", "-p", str(w.port),
             "chatproject.asgi:application"],
            self.worker_env, log,
        )  # fmt: skip
        wait_healthy(w.base, w.proc, log, timeout=60)

    def kill_worker(self, index: int) -> float:
        """SIGKILL: no drain, no goodbye; its runs are left for the other worker to reap."""
        w = self.workers[index]
        assert w.proc is not None
        w.proc.send_signal(signal.SIGKILL)
        w.proc.wait(timeout=10)
        with contextlib.suppress(ValueError):
            self.procs.children.remove(w.proc)
        return time.time()

    def stop_workers(self) -> None:
        """SIGTERM twice (the second cuts a worker's drain short: on an interrupted soak
        its replies would otherwise keep it up for `STREAM_DRAIN_SECONDS`), then wait."""
        running = [w.proc for w in self.workers if w.proc is not None and w.proc.poll() is None]
        for proc in running:
            proc.terminate()
        time.sleep(0.5)
        for proc in running:
            if proc.poll() is None:
                proc.terminate()
        for proc in running:
            self.procs.stop(proc)  # waits; SIGKILL after 10 s

    def logs(self) -> list[Path]:
        return sorted(self.logdir.glob("worker*.log"))


@dataclass
class Series:
    """One process's samples: (seconds since the soak began, RSS MiB, CPU seconds)."""

    label: str
    pid: int
    samples: list[tuple[float, float, float]] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {}
        rss = [s[1] for s in self.samples]
        return {
            "pid": self.pid, "from_s": self.samples[0][0], "to_s": self.samples[-1][0],
            "rss_start_mb": rss[0], "rss_peak_mb": max(rss), "rss_end_mb": rss[-1],
            "cpu_seconds": self.samples[-1][2] - self.samples[0][2],
        }  # fmt: skip


class Sampler:
    """Samples RSS and CPU of every process the cluster runs now (workers and Redis; a
    restarted one gets a series of its own)."""

    def __init__(self, cluster: Cluster, t0: float) -> None:
        self.cluster, self.t0 = cluster, t0
        self.series: dict[int, Series] = {}

    def sample(self) -> None:
        now = time.time() - self.t0
        for p in [*self.cluster.workers, self.cluster.redis]:
            if not p.alive():
                continue
            assert p.proc is not None
            pid = p.proc.pid
            try:
                rss, cpu = rss_mb(pid)[0], cpu_seconds(pid)
            except OSError:
                continue
            series = self.series.setdefault(pid, Series(p.label, pid))
            series.samples.append((round(now, 1), round(rss, 1), round(cpu, 2)))
