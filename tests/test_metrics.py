"""Logs: records about a run carry its ids, and `LOG_FORMAT=json` writes them as JSON
lines."""

import json
import os
import subprocess
import sys

from tests.conftest import ROOT


def django_process(code: str, **env: str) -> subprocess.CompletedProcess:
    """`code` run in a new process once Django is set up (its logging configured)."""
    keep = {"PATH", "HOME", "LANG", "VIRTUAL_ENV", "PYTHONPATH"}
    environment = {k: v for k, v in os.environ.items() if k in keep} | env
    environment["DJANGO_SETTINGS_MODULE"] = "chatproject.settings"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True,
        timeout=60,
    )


RUN_RECORD = """
import django
django.setup()
import logging
from streaming.structured_logs import run_fields
logging.getLogger("streaming.producer").warning(
    "run %s: its end is not logged yet; retrying", "r-1", extra=run_fields("r-1", "t-1")
)
"""


def test_log_format_json_writes_each_record_as_one_json_line_with_the_runs_ids() -> None:
    result = django_process(RUN_RECORD, LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stderr.splitlines() if "r-1" in line]
    record = json.loads(line)
    assert record["message"] == "run r-1: its end is not logged yet; retrying"
    assert (record["run_id"], record["thread_id"]) == ("r-1", "t-1")
    assert record["level"] == "WARNING" and record["logger"] == "streaming.producer"
    assert record["time"].endswith("+00:00")

    plain = django_process(RUN_RECORD)  # the default: the lines as they always were
    assert " WARNING streaming.producer: run r-1: its end is not logged yet; retrying" in plain.stderr
    refused = django_process(RUN_RECORD, LOG_FORMAT="yaml")
    assert refused.returncode != 0 and "LOG_FORMAT must be plain or json" in refused.stderr
