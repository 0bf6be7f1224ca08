"""Python ports of the seed examples' clients (`/work/shared/seed/streaming-examples.md`).

The seed's fetch loops do, for every network read::

    const text = decoder.decode(value);          // no {stream: true}
    for (const line of text.split('\\n'))
        if (line.startsWith('data: ')) handle(JSON.parse(line.slice(6)));

so they only work if every read holds whole events: a line split across two reads would
be lost or make `JSON.parse` throw, and a character split across reads would be mangled.
`seed_read` does the same and asserts that every chunk is made of whole events.

Each `*_client` function below is then the `handle` part of one example's frontend.
"""

import json
from collections.abc import AsyncIterable, Iterable
from typing import Any

import httpx

SSE_FIELDS = ("data: ", "id: ", "retry: ", ":")

Data = dict[str, Any]


def whole_events(chunk: bytes) -> str:
    """The chunk's text, after asserting that it holds only whole SSE events."""
    text = chunk.decode("utf-8")  # strict: a multi-byte character split across reads fails
    assert text.endswith("\n\n"), f"a read ends inside an event: {text[-120:]!r}"
    for block in text[:-2].split("\n\n"):
        assert block, f"an empty event in {text!r}"
        for line in block.split("\n"):
            assert line.startswith(SSE_FIELDS), f"a partial or unknown line {line!r} in {text!r}"
            if line.startswith("data: "):
                json.loads(line[6:])
    return text


def seed_lines(text: str) -> list[Data]:
    """The seed loop's body for one read: split on newlines, parse the `data: ` lines."""
    return [json.loads(line[6:]) for line in text.split("\n") if line.startswith("data: ")]


def seed_read(chunks: Iterable[bytes]) -> list[Data]:
    """Every read through the seed's loop; each must hold whole events."""
    found: list[Data] = []
    for chunk in chunks:
        if chunk:
            found.extend(seed_lines(whole_events(chunk)))
    return found


def sse_ids(chunks: Iterable[bytes]) -> list[tuple[int | None, Data]]:
    """(`id:` or None, data) for every event, for checks the seed clients do not make."""
    found: list[tuple[int | None, Data]] = []
    for chunk in chunks:
        for block in whole_events(chunk)[:-2].split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
            if "data" in fields:
                found.append((int(fields["id"]) if "id" in fields else None, json.loads(fields["data"])))
    return found


def live_post(client: httpx.Client, url: str, body: Data) -> tuple[int, list[bytes]]:
    """POST with httpx and keep the body's network reads as they came (`iter_bytes`)."""
    with client.stream("POST", url, json=body) as response:
        return response.status_code, list(response.iter_bytes())


async def pieces(response: Any) -> list[bytes]:
    """An in-process (django.test.AsyncClient) streaming response's pieces, as written."""
    content: AsyncIterable[bytes] = response.streaming_content
    return [chunk async for chunk in content]


# The examples' `handle` parts.


def message_client(data: list[Data]) -> tuple[str, list[str]]:
    """Examples 1 and 8: `type == "token"` appends `token`; `type == "error"` is logged."""
    text, errors = "", []
    for event in data:
        if event.get("type") == "token":
            text += event["token"]
        elif event.get("type") == "error":
            errors.append(event["error"])
    return text, errors


def buffered_client(data: list[Data]) -> str:
    """Example 3: every event's `tokens` is appended (no check: a missing one is a bug)."""
    text = ""
    for event in data:
        assert "tokens" in event, f"the seed client would append 'undefined' for {event}"
        text += event["tokens"]
    return text


def resilient_client(data: list[Data]) -> tuple[str, str | None]:
    """Example 4: `type == "error"` ends the attempt; otherwise `token || ''` is appended."""
    text = ""
    for event in data:
        if event.get("type") == "error":
            return text, event["error"]
        text += event.get("token") or ""
    return text, None


def chatkit_client(data: list[Data]) -> str:
    """Example 5: `if (data.token) fullResponse += data.token`."""
    return "".join(event["token"] for event in data if event.get("token"))


def monitored_client(data: list[Data]) -> tuple[str, Data | None, list[Data]]:
    """Example 6: tokens appended; the latest `metrics` shown. Also every metrics seen."""
    text, latest, seen = "", None, []
    for event in data:
        if event.get("token"):
            text += event["token"]
        if event.get("metrics"):
            latest = event["metrics"]
            seen.append(event["metrics"])
    return text, latest, seen


def hybrid_client(data: list[Data]) -> str:
    """Example 7 (streaming part): `token || ''` appended."""
    return "".join(event.get("token") or "" for event in data)


class WebSocketHook:
    """Example 2's `useWebSocketStreaming` state machine, fed the server's messages."""

    def __init__(self) -> None:
        self.response = ""
        self.error: str | None = None
        self.streaming = False
        self.stopped = False

    def start(self, message: str) -> str:
        self.streaming, self.response, self.error = True, "", None
        return json.dumps({"command": "start", "message": message})

    def stop(self) -> str:
        self.streaming = False
        return json.dumps({"command": "stop"})

    def onmessage(self, raw: str) -> Data:
        data = json.loads(raw)
        if data.get("type") == "token":
            self.response += data["token"]
        elif data.get("type") == "error":
            self.error = data["error"]
            self.streaming = False
        elif data.get("type") == "stopped":
            self.stopped = True
            self.streaming = False
        return data
