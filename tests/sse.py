"""Reading SSE in tests the way a careful client does: across reads, field by field."""

import json
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
