"""Reading SSE in tests the way a careful client does: across reads, field by field."""

import json
from collections.abc import Callable
from typing import Any


def parse_sse(raw: str) -> list[dict[str, Any]]:
    """Every event's fields (`id`, `data` parsed as JSON); comments and `retry:` skipped."""
    found = []
    for block in raw.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "data" in fields:
            fields["data"] = json.loads(fields["data"])
            found.append(fields)
    return found


def sse_data(raw: str) -> list[dict[str, Any]]:
    """Just the JSON payloads of the events in `raw`."""
    return [event["data"] for event in parse_sse(raw)]


async def follow_sse(
    http: Any, run_id: str, *, after: int = 0,
    until: Callable[[dict[str, Any], list[dict[str, Any]]], bool] | None = None,
) -> list[dict[str, Any]]:
    """A run's events over `GET /api/runs/<id>/events` with an `httpx.AsyncClient`, from
    after `after` to the end, or until `until(event, got)` (then it leaves mid-stream).
    Each event's `id:` is checked against its seq."""
    got: list[dict[str, Any]] = []
    buffer = ""
    headers = {"Last-Event-ID": str(after)} if after else {}
    async with http.stream("GET", f"/api/runs/{run_id}/events", headers=headers) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_text():
            buffer += chunk
            complete, _, buffer = buffer.rpartition("\n\n")
            for event in parse_sse(complete + "\n\n"):
                assert int(event["id"]) == event["data"]["seq"]
                got.append(event["data"])
                if until is not None and until(event["data"], got):
                    return got
    return got
