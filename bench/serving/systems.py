"""The systems under test, started fresh for each measurement, and what they cost.

- the project: daphne worker(s) on `chatproject.asgi:application` with Redis, PostgreSQL
  and production settings relaxed for plain http (a generated settings module only moves
  STATIC_ROOT to a temporary directory, where `collectstatic` puts the hashed files);
- the seed's Example 1 (SSE) and Example 2 (WebSocket): their Python blocks, extracted from
  the seed document at run time, served by uvicorn from a bench-only virtualenv;
- the stand-in OpenAI server (`tests.standin`) every system talks to.

CPU is utime + stime from /proc: the server processes, the redis-server process and the
PostgreSQL backends connected to the bench database (sampled, so that backends which come
and go are counted).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.fanout import ROOT, Processes, cpu_seconds, free_port, wait_for_line, wait_healthy

SEED_VENV = ROOT / "bench" / ".venv-seed"
SEED_PACKAGES = ["fastapi", "uvicorn[standard]", "openai-agents==0.24.*"]
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d[ T][\d:,.]+ ")
# What the generated wrapper gives Example 2 when it uses `agent` without defining it:
# Example 1's definition.
SEED_AGENT = 'Agent(name="Assistant", instructions="You are a helpful AI assistant.", model="gpt-4o")'


@dataclass
class Server:
    """One system's server processes (one per worker)."""

    name: str
    procs: list[subprocess.Popen[bytes]]
    bases: list[str]
    logs: list[Path]
    notes: list[str] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]


# ---------------------------------------------------------------------------- memory and CPU
def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM: the peak) of a process, in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def find_pids(comm: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == comm:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def pg_backends(database: str) -> dict[int, float]:
    """CPU seconds of the PostgreSQL backends connected to `database` (by process title:
    `postgres: <cluster>: <user> <database> <host> <state>`)."""
    found = {}
    for pid in find_pids("postgres"):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if f" {database} " in title:
                found[pid] = cpu_seconds(pid)
        except OSError:
            continue
    return found


class Meter:
    """CPU of the servers, redis-server and the bench database's PostgreSQL backends between
    `start()` and `stop()`; `sample()` often in between (a backend may exit)."""

    def __init__(self, server_pids: list[int], database: str | None, extra: dict[str, int]):
        self.server_pids, self.database, self.extra = server_pids, database, extra
        self.redis_pids = find_pids("redis-server")

    def _cpu(self, pids: list[int]) -> float:
        total = 0.0
        for pid in pids:
            with contextlib.suppress(OSError):
                total += cpu_seconds(pid)
        return total

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.server0 = self._cpu(self.server_pids)
        self.redis0 = self._cpu(self.redis_pids)
        self.extra0 = {name: self._cpu([pid]) for name, pid in self.extra.items()}
        self.pg_first = pg_backends(self.database) if self.database else {}
        self.pg_last = dict(self.pg_first)
        self.client0 = os.times()

    def sample(self) -> None:
        if self.database:
            self.pg_last.update(pg_backends(self.database))

    async def sampling(self, stop: asyncio.Event, every: float = 0.5) -> None:
        while not stop.is_set():
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(every)

    def stop(self) -> dict[str, float]:
        self.sample()
        client = os.times()
        return {
            "seconds": time.monotonic() - self.t0,
            "server": self._cpu(self.server_pids) - self.server0,
            "redis": self._cpu(self.redis_pids) - self.redis0,
            "postgres": sum(v - self.pg_first.get(pid, 0.0) for pid, v in self.pg_last.items()),
            **{name: self._cpu([pid]) - self.extra0[name] for name, pid in self.extra.items()},
            "client": (client.user + client.system) - (self.client0.user + self.client0.system),
        }


# ---------------------------------------------------------------------------- the stand-in
def start_standin(procs: Processes, env: dict[str, str], log: Path) -> tuple[str, int]:
    """The stand-in OpenAI server; its base URL (`.../v1`) and pid."""
    proc = procs.start(
        [sys.executable, "-m", "tests.standin", "--port", str(free_port())], env, log
    )
    return wait_for_line(log, proc, "standin listening on ", 15), proc.pid


# ---------------------------------------------------------------------------- the project
def project_settings(tmp: Path, env: dict[str, str], root: Path = ROOT) -> dict[str, str]:
    """Production settings for plain http: DEBUG off, no SSL redirect, no Secure cookies, no
    HSTS. A generated settings module moves STATIC_ROOT to `tmp` (nothing is written into
    the repository), where `collectstatic` makes the manifest DEBUG=false needs. `root`:
    the checkout served (this one, or `--baseline`)."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "bench_serving_settings.py").write_text(
        "# Generated by bench/serving: the project's settings, STATIC_ROOT in a temp dir.\n"
        "from chatproject.settings import *  # noqa: F403\n"
        f"STATIC_ROOT = {str(tmp / 'static')!r}\n"
    )
    env = {
        **env,
        "PYTHONPATH": str(tmp),
        "DJANGO_SETTINGS_MODULE": "bench_serving_settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "bench-serving-" + secrets.token_hex(16),
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_SECURE_COOKIES": "false",
        "DJANGO_SECURE_HSTS_SECONDS": "0",
        # The load's clients are hundreds of guests from one address.
        "CHAT_GUESTS_PER_ADDRESS": "1000000/h",
    }
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=root, env=env, check=True, timeout=300,
    )  # fmt: skip
    return env


def start_project(
    procs: Processes, env: dict[str, str], workers: int, logdir: Path, tag: str, root: Path = ROOT
) -> Server:
    server = Server("project", [], [], [])
    for number in range(1, workers + 1):
        port = free_port()
        log = logdir / f"{tag}-daphne{number}.log"
        server.procs.append(
            procs.start(
                [sys.executable, "-m", "chatproject.serve", "-b", "127.0.0.1", "-p", str(port),
                 "chatproject.asgi:application"],
                env, log, cwd=root,
            )
        )  # fmt: skip
        server.bases.append(f"http://127.0.0.1:{port}")
        server.logs.append(log)
    for proc, base, log in zip(server.procs, server.bases, server.logs, strict=True):
        wait_healthy(base, proc, log)
    return server


# ---------------------------------------------------------------------------- the seed
def seed_python() -> Path:
    """The bench-only virtualenv with the seed's stack; created on first use."""
    python = SEED_VENV / "bin" / "python"
    probe = [str(python), "-c", "import fastapi, uvicorn, agents, websockets"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"creating {SEED_VENV} ({', '.join(SEED_PACKAGES)}) ...", file=sys.stderr)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(SEED_VENV)], check=True, timeout=120)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *SEED_PACKAGES], check=True, timeout=900
    )
    return python


def seed_block(doc: str, example: int) -> str:
    """The first Python code block under `## Example <n>:` in the seed document."""
    section = re.search(rf"^## Example {example}:.*?(?=^## Example |\Z)", doc, re.M | re.S)
    if not section:
        raise RuntimeError(f"no 'Example {example}' section in the seed document")
    block = re.search(r"^```python\n(.*?)^```", section.group(0), re.M | re.S)
    if not block:
        raise RuntimeError(f"no Python block in the seed's Example {example}")
    return block.group(1)


def top_level_names(code: str) -> set[str]:
    names = set()
    for node in ast.parse(code).body:
        if isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def extract_seed(doc_path: Path, tmp: Path) -> dict[int, tuple[str, list[str]]]:
    """Write Examples 1 and 2 as `seed_example<n>.py` in `tmp`, with a generated wrapper
    where a block lacks a name it needs; per example, the `module:app` to serve and notes."""
    doc = doc_path.read_text()
    apps: dict[int, tuple[str, list[str]]] = {}
    for example in (1, 2):
        code = seed_block(doc, example)
        module = f"seed_example{example}"
        (tmp / f"{module}.py").write_text(code)
        names = top_level_names(code)
        if "app" not in names:
            raise RuntimeError(f"the seed's Example {example} defines no `app`")
        notes = [f"Example {example}: the seed's code block as written ({len(code.splitlines())} lines)"]
        if "agent" not in names:
            wrapper = f"{module}_app"
            (tmp / f"{wrapper}.py").write_text(
                f"# Generated by bench/serving: the seed's Example {example} uses `agent`\n"
                "# without defining it; this adds Example 1's definition, nothing else.\n"
                f"import {module}\nfrom agents import Agent\n\n"
                f"{module}.agent = {SEED_AGENT}\napp = {module}.app\n"
            )
            module = wrapper
            notes.append(
                f"Example {example} uses `agent` without defining it: a generated wrapper "
                f"module sets `agent = {SEED_AGENT}` (Example 1's) on it"
            )
        apps[example] = (f"{module}:app", notes)
    return apps


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited early:\n{log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{proc.args} did not listen on {port} within {timeout}s")


def start_seed(
    procs: Processes, python: Path, tmp: Path, app: str, env: dict[str, str], log: Path
) -> Server:
    """`uvicorn <module>:app` (uvicorn's defaults, as the seed would be run)."""
    port = free_port()
    env = {**env, "PYTHONPATH": str(tmp), "OPENAI_AGENTS_DISABLE_TRACING": "1"}
    proc = procs.start(
        [str(python), "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)], env, log
    )
    wait_listening(port, proc, log)
    return Server(app, [proc], [f"http://127.0.0.1:{port}"], [log])


def log_problems(logs: list[Path], limit: int = 50) -> list[str]:
    """Lines of the servers' logs that report trouble, as `<count> x <line>` (timestamps
    and the log's name dropped, so repeats collapse)."""
    words = ("ERROR", "WARNING", "Traceback", "CRITICAL", "Exception", "error")
    found: dict[str, int] = {}
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if any(word in line for word in words):
                text = TIMESTAMP.sub("", line.strip())[:300]
                found[text] = found.get(text, 0) + 1
    ranked = sorted(found.items(), key=lambda item: -item[1])[:limit]
    return [f"{n} x {text}" for text, n in ranked]
