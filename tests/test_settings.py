"""Settings: embedded defaults need no services; production settings pass the deploy checks."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )


def bare_env(**extra: str) -> dict[str, str]:
    keep = {"PATH", "HOME", "LANG", "VIRTUAL_ENV", "PYTHONPATH"}
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(extra)
    return env


PROBE = """
import asyncio
from django.conf import settings as s
from streaming.agent_runtime import build_model, model_name
async def model_class():
    return type(build_model()).__name__
print(s.DATABASES["default"]["ENGINE"])
from streaming.logs import backend_path
print(backend_path())
print(model_name(), asyncio.run(model_class()))
"""


def test_defaults_need_no_services() -> None:
    result = manage("shell", "--no-imports", "-c", PROBE, env=bare_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3", "streaming.logs.memory.MemoryEventLog", "offline", "OfflineModel",
    ]


def test_services_and_model_are_chosen_from_the_environment() -> None:
    env = bare_env(
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/test",
        REDIS_URL="redis://127.0.0.1:6379/0",
        OPENAI_API_KEY="sk-x",
        AGENT_MODEL="llama3",
        AGENT_API="chat_completions",
    )
    result = manage("shell", "--no-imports", "-c", PROBE, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.postgresql", "streaming.logs.redis.RedisEventLog", "llama3",
        "OpenAIChatCompletionsModel",
    ]


def test_production_settings_pass_check_deploy() -> None:
    env = bare_env(
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY="x" * 20 + "a-production-secret-of-fifty-plus-characters-9f8e7d",
        DJANGO_ALLOWED_HOSTS="chat.example.com",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://chat.example.com",
    )
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


HSTS_PROBE = """
from django.conf import settings as s
print(s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD)
"""


def test_hsts_subdomains_and_preload_are_opted_into() -> None:
    """Production sends HSTS for this host alone; `includeSubDomains` and `preload` reach
    beyond it (subdomains, browsers' built-in lists), so each takes its own variable."""
    production = {"DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": "an-own-secret-" + "k9" * 25}
    result = manage("shell", "--no-imports", "-c", HSTS_PROBE, env=bare_env(**production))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["31536000", "False", "False"]
    opted_in = bare_env(
        **production,
        DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
        DJANGO_SECURE_HSTS_PRELOAD="true",
    )
    result = manage("shell", "--no-imports", "-c", HSTS_PROBE, env=opted_in)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["31536000", "True", "True"]


def test_production_refuses_to_start_without_a_secret_key() -> None:
    result = manage("check", env=bare_env(DJANGO_DEBUG="false"))
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def example_env() -> dict[str, str]:
    """.env.example's settings, as docker-compose.yml gives them to the app."""
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value
    return values


def test_production_refuses_to_start_on_the_example_secret_key() -> None:
    """Compose starts from .env.example: its key is public, so migrate (and with it every
    worker, which waits for migrate) stops with a message naming the variable to set."""
    example = example_env()
    result = manage("check", env=bare_env(**example))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DJANGO_SECRET_KEY is still the placeholder from .env.example" in result.stderr
    own_key = bare_env(**{**example, "DJANGO_SECRET_KEY": "an-own-secret-" + "k9" * 25})
    result = manage("check", env=own_key)
    assert result.returncode == 0, result.stderr


def test_migrations_are_up_to_date() -> None:
    result = manage("makemigrations", "--check", "--dry-run", env=bare_env())
    assert result.returncode == 0, result.stdout


def test_a_log_backend_that_cannot_be_used_is_refused_at_start() -> None:
    for path, said in [
        ("streaming.logs.nowhere.Log", "cannot be imported"),
        ("streaming.events.Delta", "is not an event-log backend"),
    ]:
        result = manage("check", env=bare_env(STREAM_LOG_BACKEND=path))
        assert result.returncode != 0
        assert "streaming.E001" in result.stderr and said in result.stderr, result.stderr
    assert manage("check", env=bare_env(STREAM_LOG_BACKEND="bench.xread_log.XreadEventLog")).returncode == 0


def test_tools_that_cannot_be_used_are_refused_at_start() -> None:
    for env, said in [
        ({"AGENT_TOOLS": "streaming.tools.nowhere"}, "streaming.E002"),
        ({"AGENT_TOOLS": "streaming.tools.evaluate"}, "is not a tool"),
        ({"AGENT_MCP_SERVERS": "ftp://tools/mcp"}, "streaming.E003"),
    ]:
        result = manage("check", env=bare_env(**env))
        assert result.returncode != 0
        assert said in result.stderr, result.stderr
    good = bare_env(AGENT_TOOLS="streaming.tools.calculate,tests.agent_tools.nap", AGENT_MCP_SERVERS="http://127.0.0.1:9/mcp")
    assert manage("check", env=good).returncode == 0
