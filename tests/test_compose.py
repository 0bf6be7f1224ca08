"""docker-compose.yml and the Dockerfile, read as data (there is no Docker engine here):
the services, commands that name real modules and files, health checks and start order,
settings the project reads, and the one nginx template that compose and the process-level
twin (deploy/twin.py) both render, run by Debian's nginx in front of a server that echoes
the headers it gets."""

import contextlib
import http.client
import json
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from deploy import nginx_conf, twin
from tests.conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = ("migrate", "web")  # built from the Dockerfile
SETTINGS = (ROOT / "chatproject" / "settings.py").read_text()
SETTINGS_VARIABLES = set(re.findall(r'env\.\w+\(\s*"([A-Z][A-Z0-9_]*)"', SETTINGS))
# Variables the official images document (postgres), or the template's placeholders (nginx).
SERVICE_VARIABLES = {
    "postgres": {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "POSTGRES_INITDB_ARGS", "PGDATA"},
    "redis": set(),
    "nginx": set(nginx_conf.PLACEHOLDERS),
}
TEMPLATES_DIR = "/etc/nginx/templates/"


def env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value
    return values


def seconds(duration: str) -> float:
    """A compose duration (`35s`, `1m30s`) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def depends(service: str) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in SERVICES[service].get("depends_on", {}).items()}


def template_mount() -> tuple[Path, str]:
    """The nginx service's template: (the file in the repository, where it is mounted)."""
    for volume in SERVICES["nginx"]["volumes"]:
        source, target = volume.split(":")[:2]
        if target.startswith(TEMPLATES_DIR):
            return (ROOT / source).resolve(), target
    raise AssertionError("nginx mounts no template")


def test_the_stack_is_redis_postgres_migrate_web_and_nginx() -> None:
    assert set(SERVICES) == {"redis", "postgres", "migrate", "web", "nginx"}
    assert "pgdata" in COMPOSE["volumes"]
    assert any(v.startswith("pgdata:") for v in SERVICES["postgres"]["volumes"])


def test_web_is_at_least_two_daphne_workers_of_the_project() -> None:
    web = SERVICES["web"]
    assert web["deploy"]["replicas"] >= 2
    command = web["command"]
    assert command[:3] == ["python", "-m", "chatproject.serve"]  # daphne, on uvloop
    assert command[-1] == "chatproject.asgi:application"
    module, _, attribute = command[-1].partition(":")
    source = (ROOT / (module.replace(".", "/") + ".py")).read_text()
    assert re.search(rf"^{attribute} = ", source, re.MULTILINE)
    assert "ports" not in web  # reached through nginx only
    assert SERVICES["nginx"]["ports"] == ["8000:8000"]


def test_migrations_run_once_before_any_worker_starts() -> None:
    migrate = SERVICES["migrate"]
    assert migrate["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert (ROOT / "manage.py").is_file()
    assert migrate["restart"] == "no"
    assert depends("web")["migrate"] == "service_completed_successfully"


def test_every_long_running_service_has_a_health_check_the_next_one_waits_for() -> None:
    for name in ("redis", "postgres", "web", "nginx"):
        assert SERVICES[name]["healthcheck"]["test"], name
    assert depends("migrate") == {"redis": "service_healthy", "postgres": "service_healthy"}
    assert depends("web") == {
        "redis": "service_healthy", "postgres": "service_healthy",
        "migrate": "service_completed_successfully",
    }
    assert depends("nginx") == {"web": "service_healthy"}
    for name in ("web", "nginx"):
        assert "/healthz" in " ".join(SERVICES[name]["healthcheck"]["test"])


def test_workers_get_longer_to_stop_than_their_drain() -> None:
    web = SERVICES["web"]
    assert web.get("stop_signal", "SIGTERM") == "SIGTERM"
    default = re.search(r'"STREAM_DRAIN_SECONDS", default=([\d.]+)', SETTINGS)
    assert default, "chatproject/settings.py reads STREAM_DRAIN_SECONDS"
    drain = float(env_file(ROOT / ".env.example").get("STREAM_DRAIN_SECONDS") or default[1])
    assert seconds(web["stop_grace_period"]) > drain


def test_every_variable_given_to_the_app_is_a_setting_it_reads() -> None:
    example = env_file(ROOT / ".env.example")
    assert not set(example) - SETTINGS_VARIABLES
    for name in APP_SERVICES:
        service = SERVICES[name]
        files = [f if isinstance(f, dict) else {"path": f} for f in service["env_file"]]
        assert files[0] == {"path": ".env.example"}  # the defaults, checked above
        assert all(f.get("required", True) is False for f in files[1:])  # local overrides
        assert not set(service.get("environment", {})) - SETTINGS_VARIABLES, name
    for name, allowed in SERVICE_VARIABLES.items():
        assert not set(SERVICES[name].get("environment", {})) - allowed, name
    # The URLs point at the services by name.
    assert "@postgres:5432/" in example["DATABASE_URL"]
    assert example["REDIS_URL"].startswith("redis://redis:6379/")


def test_nginx_renders_the_repositorys_template_with_docker_dns() -> None:
    nginx = SERVICES["nginx"]
    image, _, tag = nginx["image"].partition(":")
    assert image == "nginx"
    major, minor = (int(part) for part in re.match(r"(\d+)\.(\d+)", tag).groups())
    assert (major, minor) >= (1, 27)  # the `resolve` parameter of `server` (1.27.3)
    source, target = template_mount()
    assert source == nginx_conf.TEMPLATE and source.is_file()
    assert target == TEMPLATES_DIR + "default.conf.template"  # replaces the default server
    placeholders = set(re.findall(r"\$\{(\w+)\}", nginx_conf.TEMPLATE.read_text()))
    assert placeholders == set(nginx["environment"]) == set(nginx_conf.PLACEHOLDERS)
    assert nginx_conf.SERVER_PARAMETERS in nginx["environment"]["NGINX_UPSTREAM_SERVERS"]
    rendered = nginx_conf.render(nginx_conf.TEMPLATE.read_text(), nginx["environment"])
    assert "server web:8000 resolve " in rendered and "resolver 127.0.0.11 " in rendered
    assert "listen 8000;" in rendered and "${" not in rendered


def test_the_template_keeps_streams_flowing() -> None:
    text = nginx_conf.TEMPLATE.read_text()
    assert "proxy_next_upstream error timeout http_502 http_503;" in text
    assert "proxy_buffering off;" in text and "proxy_read_timeout 1h;" in text
    ws = re.search(r"location /ws/ \{(.*?)\}", text, re.DOTALL)
    assert ws and "proxy_set_header Upgrade $http_upgrade;" in ws[1]
    assert "proxy_set_header Connection $connection_upgrade;" in ws[1]


def test_nginx_never_sends_a_post_a_worker_received_to_another() -> None:
    """A worker that fails mid-request may have acted on it: only a request that reached no
    worker, or an idempotent one, is tried again elsewhere (docs/deploy.md, Retries)."""
    text = nginx_conf.TEMPLATE.read_text()
    retries = re.findall(r"^\s*proxy_next_upstream\s+([^;]*);", text, re.MULTILINE)
    assert len(retries) == 2  # the server's, and /ws/'s (which adds a refused handshake)
    assert all("non_idempotent" not in conditions.split() for conditions in retries)


def test_the_twin_renders_the_template_compose_mounts(tmp_path) -> None:
    """Only the substituted lines differ, and Debian's nginx accepts the twin's result."""
    stack = twin.Stack(workers=2, port=8123, env={}, workdir=tmp_path, migrate=False)
    compose = nginx_conf.render(nginx_conf.TEMPLATE.read_text(), SERVICES["nginx"]["environment"])
    mine = stack.render_nginx_conf()
    differing = [
        (a.strip(), b.strip())
        for a, b in zip(compose.splitlines(), mine.splitlines(), strict=True)
        if a != b
    ]
    ports = [w.port for w in stack.workers]
    assert differing == [
        (SERVICES["nginx"]["environment"]["NGINX_UPSTREAM_SERVERS"],
         f"server 127.0.0.1:{ports[0]} {nginx_conf.SERVER_PARAMETERS}; "
         f"server 127.0.0.1:{ports[1]} {nginx_conf.SERVER_PARAMETERS};"),
        ("listen 8000;", "listen 127.0.0.1:8123;"),
    ]
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx is None:
        pytest.fail("nginx is not installed: run the suite with scripts/test.sh")
    checked = subprocess.run(
        [nginx, "-t", *stack.write_nginx_conf()], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr


def test_the_image_builds_assets_then_runs_daphne_as_a_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert stages[0].startswith("node:20") and stages[-1].startswith("python:3.11-slim")
    assert "npm ci --omit=dev" in dockerfile and "COPY package.json package-lock.json" in dockerfile
    assert "collectstatic --noinput" in dockerfile
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.MULTILINE)
    assert re.search(r"^HEALTHCHECK .*/healthz", dockerfile, re.MULTILINE | re.DOTALL)
    assert re.search(r"^STOPSIGNAL SIGTERM$", dockerfile, re.MULTILINE)
    cmd = re.search(r"^CMD (.*)$", dockerfile, re.MULTILINE)[1]
    assert yaml.safe_load(cmd) == SERVICES["web"]["command"]


class EchoHeaders(BaseHTTPRequestHandler):
    """Answers any GET with the request's headers as JSON (lower-cased names)."""

    def do_GET(self) -> None:
        body = json.dumps({name.lower(): value for name, value in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def nginx_in_front_of_an_echo(workdir: Path, tls_proxies: list[str]) -> Iterator[int]:
    """nginx, rendered from the template as the twin renders it, with a header-echoing
    server as its one worker; yields nginx's port."""
    echo = ThreadingHTTPServer(("127.0.0.1", 0), EchoHeaders)
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    stack = twin.Stack(
        workers=1, port=twin.free_port(), env={}, workdir=workdir, migrate=False,
        tls_proxies=tls_proxies,
    )
    stack.workers[0].port = echo.server_address[1]
    nginx = subprocess.Popen(
        [nginx_conf.find_nginx(), *stack.write_nginx_conf(), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while twin.http_status(stack.port) != 200:
            assert nginx.poll() is None and time.monotonic() < deadline, twin.tail(workdir / "error.log")
            time.sleep(0.05)
        yield stack.port
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(10)
        echo.shutdown()
        echo.server_close()


def forwarded(port: int, path: str, headers: dict[str, str]) -> dict[str, str | None]:
    """What the worker behind nginx gets for the forwarding headers of a request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        assert response.status == 200
        got = json.loads(response.read())
    finally:
        conn.close()
    names = ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-port")
    return {name: got.get(name) for name in names}


FORGED = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443"}


def test_nginx_overwrites_the_forwarding_headers_clients_send(tmp_path) -> None:
    """nginx is the edge: the worker hears nginx's own view of the connection (a client
    on 127.0.0.1, over plain HTTP), on every location, whatever the client claims."""
    with nginx_in_front_of_an_echo(tmp_path, tls_proxies=[]) as port:
        mine = {"x-forwarded-for": "127.0.0.1", "x-forwarded-proto": "http", "x-forwarded-port": None}
        for path in ("/", "/api/threads", "/ws/stream", "/static/chat/app.js", "/healthz"):
            assert forwarded(port, path, FORGED) == mine, path
            assert forwarded(port, path, {}) == mine, path


def test_nginx_believes_a_tls_proxy_it_is_told_of_and_no_one_else(tmp_path) -> None:
    """With NGINX_TLS_PROXIES naming it, the proxy's own entry of X-Forwarded-For (the
    last) and its X-Forwarded-Proto pass; what a client put before them does not."""
    with nginx_in_front_of_an_echo(tmp_path, tls_proxies=["127.0.0.1"]) as port:
        via_proxy = {"X-Forwarded-For": "6.6.6.6, 203.0.113.7", "X-Forwarded-Proto": "https"}
        for path in ("/", "/ws/stream"):
            assert forwarded(port, path, via_proxy) == {
                "x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https", "x-forwarded-port": None,
            }
        # Anything but http or https for the scheme is nginx's own; no header, its peer's.
        assert forwarded(port, "/", {"X-Forwarded-Proto": "javascript"}) == {
            "x-forwarded-for": "127.0.0.1", "x-forwarded-proto": "http", "x-forwarded-port": None,
        }
    with nginx_in_front_of_an_echo(tmp_path, tls_proxies=["10.9.9.9", "192.0.2.0/24"]) as port:
        assert forwarded(port, "/", FORGED)["x-forwarded-for"] == "127.0.0.1"
        assert forwarded(port, "/", FORGED)["x-forwarded-proto"] == "http"


def statuses(port: int, count: int, headers: dict[str, str]) -> list[int]:
    """The statuses of `count` requests for the chat page sent back to back."""
    got = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        for _ in range(count):
            conn.request("GET", "/", headers=headers)
            response = conn.getresponse()
            response.read()
            got.append(response.status)
    finally:
        conn.close()
    return got


def test_nginx_limits_requests_without_a_session_per_address(tmp_path) -> None:
    """A client without a session gets a burst of 50 and then 429s from nginx itself; a
    client with one is not held to that (its limit is ten times higher)."""
    with nginx_in_front_of_an_echo(tmp_path, tls_proxies=[]) as port:
        anonymous = statuses(port, 120, {})
        assert anonymous[:50] == [200] * 50 and anonymous.count(429) >= 60
        assert statuses(port, 120, {"Cookie": "sessionid=abc"}) == [200] * 120
