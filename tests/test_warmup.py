"""Warm-up: the canned reply goes through the real model classes and the Agents SDK
in-process, for both provider APIs, and never reaches the network."""

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from streaming import warmup


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
def test_the_canned_reply_runs_through_the_configured_model_class(settings, api, standin) -> None:
    settings.AGENT_API = api
    assert asyncio.run(warmup._run_once()) == "Warm up"
    assert standin.requests == []  # the configured provider was not called


def test_a_failed_warm_up_is_logged_and_the_worker_starts_anyway(monkeypatch, caplog) -> None:
    async def broken() -> str:
        raise RuntimeError("no luck")

    monkeypatch.setattr(warmup, "_run_once", broken)
    warmup.warm_up()  # does not raise
    assert "agent warm-up failed" in caplog.text and "no luck" in caplog.text


def test_a_worker_leaves_its_startup_heap_out_of_the_collectors_way() -> None:
    """After the worker's entry point is loaded, what it holds is frozen (`gc.freeze`): a
    full collection walks only what requests make, not the startup heap."""
    probe = (
        "import gc, chatproject.asgi; "
        "print(gc.get_freeze_count(), len(gc.get_objects()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout.split()
    frozen, unfrozen = int(out[-2]), int(out[-1])
    assert frozen > 100_000  # the modules, classes and warmed validators
    assert unfrozen < frozen / 20
