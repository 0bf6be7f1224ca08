"""Shared fixtures: the stand-in OpenAI server, live daphne servers and logged-in clients."""

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgiref.sync import SyncToAsync
from django.db import connection, connections
from django.test import AsyncClient

from deploy.twin import free_port
from tests.standin import StandinServer

__all__ = ["free_port"]  # tests import it from here

ROOT = Path(__file__).resolve().parent.parent


# Tests make many guests from 127.0.0.1; the budget per address is tested on its own.
GUEST_BUDGET = "1000000/h"


@pytest.fixture(autouse=True)
def _fast_offline_model(settings) -> None:
    """Tests do not wait for the offline model's human-friendly pacing, nor run out of
    guests from their one address."""
    settings.OFFLINE_MODEL_TPS = 0
    settings.CHAT_GUESTS_PER_ADDRESS = GUEST_BUDGET


@pytest.fixture(autouse=True)
def _close_async_db_connections() -> Iterator[None]:
    """Close the connection that async ORM calls opened in asgiref's worker thread, which
    would otherwise keep the test database from being dropped."""
    yield
    # Async tests run sync_to_async work on asgiref's single shared thread: close there.
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()


@pytest.fixture(scope="session")
def standin_server() -> Iterator[StandinServer]:
    server = StandinServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def standin(standin_server: StandinServer, settings) -> StandinServer:
    """The stand-in OpenAI server, reset, with the app configured to use it."""
    standin_server.reset()
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = standin_server.base_url
    settings.AGENT_MODEL = "gpt-test"
    settings.AGENT_API = "responses"
    return standin_server


def test_database_url() -> str:
    """A URL for the database the test run is using, for server processes to share it."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


class DaphneServer:
    """A daphne process serving the project on a free loopback port."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(f"/tmp/chat-daphne-{self.port}.log")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chatproject.serve", "-b", "127.0.0.1", "-p", str(self.port),
             "chatproject.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited early:\n{self.log.read_text()}")
            with suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"daphne did not start:\n{self.log.read_text()}")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def daphne_env(**overrides: str) -> dict[str, str]:
    """The environment for a daphne process on the test database."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"REDIS_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="chatproject.settings",
        DATABASE_URL=test_database_url(),
        OFFLINE_MODEL_TPS="0",
        CHAT_GUESTS_PER_ADDRESS=GUEST_BUDGET,
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


@pytest.fixture
def daphne_server(transactional_db) -> Iterator[Callable[..., DaphneServer]]:
    """Start daphne processes on the test database: `daphne_server(**env_overrides)`."""
    servers: list[DaphneServer] = []

    def start(**overrides: str) -> DaphneServer:
        server = DaphneServer(daphne_env(**overrides))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def guest_session(base_url: str) -> httpx.Client:
    """An HTTP client that has opened the chat page once, so it holds a guest session."""
    client = httpx.Client(base_url=base_url, timeout=30, follow_redirects=True)
    response = client.get("/")
    assert response.status_code == 200
    client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
    client.headers["Origin"] = base_url
    assert client.post("/api/session", json={}).status_code == 200  # as the page does: its guest
    return client


async def guest_client(**options: Any) -> AsyncClient:
    """An in-process client holding a guest session (asked for as the chat page does)."""
    client = AsyncClient(**options)
    response = await client.post("/api/session", data="{}", content_type="application/json")
    assert response.status_code == 200, response.content
    return client


async def start_run_over(http: httpx.AsyncClient, **body: object) -> str:
    """Start a run in a new thread through the native API; its run id."""
    thread = (await http.post("/api/threads", json={})).json()
    response = await http.post(f"/api/threads/{thread['id']}/messages", json={"message": "hello", **body})
    assert response.status_code == 201, response.text
    return response.json()["run_id"]


async def ended_reply(run_id: str, *, timeout: float = 5.0) -> Any:
    """The reply of `run_id` once it is no longer `streaming` (its end is written just
    after its terminal event), or an AssertionError after `timeout` seconds."""
    from streaming.models import Message

    for _ in range(int(timeout / 0.05)):
        reply = await Message.objects.aget(pk=run_id)
        if reply.status != "streaming":
            return reply
        await asyncio.sleep(0.05)
    raise AssertionError(f"reply {run_id} was left streaming")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis the suite runs against (scripts/test.sh sets TEST_REDIS_URL)."""
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.fail("TEST_REDIS_URL is not set: run the suite with scripts/test.sh")
    return url


@pytest.fixture
def use_redis(settings, redis_url: str) -> str:
    """Run this test's streaming core on Redis instead of in-process memory."""
    settings.REDIS_URL = redis_url
    return redis_url


@pytest.fixture(params=["memory", "redis"])
def backend(request, settings) -> str:
    """Run the test once on each event-log backend (the in-process one, then Redis)."""
    if request.param == "redis":
        request.getfixturevalue("use_redis")
    else:
        settings.REDIS_URL = ""
    return request.param


@pytest.fixture
async def run_cleanup() -> AsyncIterator[None]:
    """Stop this event loop's runs, chores and Redis connections after an async test."""
    yield
    from streaming.agent_runtime import close_clients
    from streaming.logs import close_event_logs
    from streaming.manager import run_manager

    await run_manager().shutdown()
    await close_event_logs()
    await close_clients()
