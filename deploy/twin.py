"""The scale-out stack as local processes: N daphne workers behind Debian's nginx, on the
local Redis and PostgreSQL, with the nginx configuration docker-compose.yml uses
(deploy/nginx/chat.conf.template). See docs/deploy.md.

    python -m deploy [--workers 2] [--port 8000]     # what scripts/stack.sh runs

From Python (the end-to-end tests use this)::

    with Stack(workers=2, port=8000, env=env) as stack:
        stack.url, stack.workers[0].url     # nginx, and one worker directly
        stack.workers[0].kill()             # or .terminate() (SIGTERM: the worker drains)
        stack.restart_worker(0)             # a new process on the same port
"""

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from .nginx_conf import MAIN_CONF, TEMPLATE, find_nginx, render, tls_proxies, upstream_servers

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/1"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/chat"
DEFAULT_DRAIN_SECONDS = 20.0  # STREAM_DRAIN_SECONDS' default in chatproject/settings.py
ASGI_APP = "chatproject.asgi:application"


class StackError(Exception):
    """A part of the stack could not be started."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_status(port: int, path: str = "/healthz", timeout: float = 2.0) -> int | None:
    """The status of GET `path` on 127.0.0.1:`port` (redirects not followed), or None if
    nothing answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database `url` names if it does not exist yet."""
    if not url.startswith(("postgres://", "postgresql://")):
        return
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict

    name = str(conninfo_to_dict(url).get("dbname") or "")
    if not name:
        return
    with psycopg.connect(url, dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _reap(process: subprocess.Popen[bytes], deadline: float) -> int:
    """Wait for `process` until `deadline`, then kill it; its exit code."""
    try:
        return process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


@dataclass
class Worker:
    """One daphne process on a loopback port."""

    index: int
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"web{self.index + 1}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def send_signal(self, signum: int) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signum)

    def terminate(self) -> None:
        """SIGTERM: the worker drains its connections and runs, then exits."""
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        assert self.process is not None
        return self.process.wait(timeout)


class Stack:
    """nginx on `port` in front of `workers` daphne processes, all children of this one.

    `env` is the workers' whole environment (default: this process's), with `REDIS_URL`
    and `DATABASE_URL` defaulting to the local services. Logs, the rendered nginx
    configuration and nginx's runtime files go to `workdir` (default: a new temporary
    directory, removed by `stop()` unless `keep`). The workers listen on loopback only:
    they believe whoever reaches them about the client's address and scheme, which only
    nginx may. `tls_proxies`: the addresses of a TLS proxy in front of nginx, whose
    forwarding headers nginx then believes (none by default: nginx is the edge)."""

    def __init__(
        self,
        *,
        workers: int = 2,
        port: int = 8000,
        host: str = "127.0.0.1",
        env: Mapping[str, str] | None = None,
        workdir: Path | None = None,
        keep: bool = False,
        migrate: bool = True,
        create_database: bool = False,
        python: str = sys.executable,
        tls_proxies: Sequence[str] = (),
    ) -> None:
        if workers < 1:
            raise ValueError("at least one worker is needed")
        self.env = dict(os.environ if env is None else env)
        for name, default in (("REDIS_URL", DEFAULT_REDIS_URL), ("DATABASE_URL", DEFAULT_DATABASE_URL)):
            if not self.env.get(name):
                self.env[name] = default
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.port, self.host = port, host
        self.tls_proxies = list(tls_proxies)
        self.migrate, self.create_database, self.python = migrate, create_database, python
        self.keep = keep or workdir is not None
        self.dir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="chat-stack-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)  # nginx's workers (`nobody` when started as root) read in here
        self.workers = [Worker(i, free_port(), self.dir / f"web{i + 1}.log") for i in range(workers)]
        self.nginx: subprocess.Popen[bytes] | None = None
        drain = float(self.env.get("STREAM_DRAIN_SECONDS") or DEFAULT_DRAIN_SECONDS)
        self.stop_timeout = drain + 10.0  # a worker's drain, then its own shutdown

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def nginx_conf(self) -> Path:
        return self.dir / "chat.conf"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Starting.

    def start(self) -> Self:
        """Migrate once, start the workers, then nginx; return when all answer."""
        try:
            if self.create_database:
                ensure_database(self.env["DATABASE_URL"])
            if self.migrate:
                self._manage("migrate", "--noinput")
            if self.env.get("DJANGO_DEBUG", "").lower() in ("0", "false", "no", "off"):
                self._manage("collectstatic", "--noinput")  # hashed names for ServeStatic
            for worker in self.workers:
                self._spawn(worker)
            for worker in self.workers:
                self._wait_ready(worker)
            self._start_nginx()
        except BaseException:
            self.stop()
            raise
        return self

    def _manage(self, *args: str) -> None:
        done = subprocess.run(
            [self.python, "manage.py", *args], cwd=ROOT, env=self.env,
            capture_output=True, text=True, check=False,
        )
        if done.returncode != 0:
            raise StackError(f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")

    def _spawn(self, worker: Worker) -> None:
        command = [
            self.python, "-m", "chatproject.serve", "-b", "127.0.0.1", "-p", str(worker.port),
            "--proxy-headers", ASGI_APP,
        ]
        with worker.log.open("ab") as out:
            # A process group of its own: a terminal's Ctrl-C reaches only this process,
            # which then stops the children in order.
            worker.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                process_group=0,
            )

    def _wait_ready(self, worker: Worker, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not worker.alive():
                raise StackError(f"{worker.name} exited at start:\n{tail(worker.log)}")
            status = http_status(worker.port)
            if status is not None and status < 500:
                return
            time.sleep(0.1)
        raise StackError(f"{worker.name} did not answer within {timeout:.0f} s:\n{tail(worker.log)}")

    def render_nginx_conf(self) -> str:
        listen = f"{self.host}:{self.port}" if self.host else str(self.port)
        return render(
            TEMPLATE.read_text(),
            {
                "NGINX_UPSTREAM_SERVERS": upstream_servers([w.port for w in self.workers]),
                "NGINX_LISTEN": listen,
                "NGINX_TLS_PROXIES": tls_proxies(self.tls_proxies),
            },
        )

    def write_nginx_conf(self) -> list[str]:
        """Write nginx's configuration into the stack's directory; the arguments that
        make nginx use it (and keep every file it writes in that directory)."""
        self.nginx_conf.write_text(self.render_nginx_conf())
        main = self.dir / "nginx.conf"
        main.write_text(MAIN_CONF)
        (self.dir / "tmp").mkdir(exist_ok=True)
        return ["-p", f"{self.dir}/", "-c", str(main), "-e", str(self.dir / "error.log")]

    def _start_nginx(self, timeout: float = 15.0) -> None:
        command = [find_nginx(), *self.write_nginx_conf(), "-g", "daemon off;"]
        error_log = self.dir / "error.log"
        with (self.dir / "nginx.out").open("ab") as out:
            self.nginx = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, process_group=0
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.nginx.poll() is not None:
                raise StackError(
                    f"nginx exited at start:\n{tail(self.dir / 'nginx.out')}\n{tail(error_log)}"
                )
            if http_status(self.port) == 200:
                return
            time.sleep(0.1)
        raise StackError(f"nginx did not answer on port {self.port}:\n{tail(error_log)}")

    def restart_worker(self, index: int) -> Worker:
        """Replace worker `index` (killing it if it still runs) by a new process on the
        same port, and wait until it answers."""
        worker = self.workers[index]
        if worker.alive():
            worker.kill()
            worker.wait()
        self._spawn(worker)
        self._wait_ready(worker)
        return worker

    # Stopping.

    def stop(self) -> dict[str, int | None]:
        """SIGTERM every worker (each drains), wait for them, then stop nginx gracefully.
        Whatever outlives its time is killed. Returns each process's exit code."""
        codes: dict[str, int | None] = {}
        for worker in self.workers:
            worker.terminate()
        deadline = time.monotonic() + self.stop_timeout
        for worker in self.workers:
            codes[worker.name] = None if worker.process is None else _reap(worker.process, deadline)
        if self.nginx is not None:
            if self.nginx.poll() is None:
                self.nginx.send_signal(signal.SIGQUIT)  # graceful: finish open requests
            codes["nginx"] = _reap(self.nginx, time.monotonic() + 10)
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        return codes

    def dead(self) -> list[str]:
        """The processes that have exited on their own."""
        gone = [w.name for w in self.workers if not w.alive()]
        if self.nginx is not None and self.nginx.poll() is not None:
            gone.append("nginx")
        return gone
