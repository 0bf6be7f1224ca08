"""End to end on a real daphne process: a guest opens the site and a reply streams in."""

import json
import time

import pytest

from streaming.models import Message
from tests.conftest import guest_session
from tests.sse import sse_data


def read_sse(response) -> list[tuple[float, dict]]:
    """(arrival time, event) for each `data:` event, parsed across network reads."""
    events, buffer = [], ""
    for chunk in response.iter_text():
        buffer += chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            events.extend((time.monotonic(), data) for data in sse_data(block + "\n\n"))
    return events


@pytest.mark.django_db(transaction=True)
def test_a_guest_opens_the_site_and_watches_the_offline_reply_stream(daphne_server) -> None:
    server = daphne_server(OFFLINE_MODEL_TPS="100")
    client = guest_session(server.url)
    page = client.get("/").text
    assert 'id="message"' in page and '<label for="message"' in page
    assert "Offline model" in page
    script = client.get("/static/chat/app.js")
    assert script.status_code == 200 and "ChatClient" in script.text
    library = client.get("/static/vendor/marked/marked.esm.js")
    assert library.status_code == 200 and "export" in library.text

    with client.stream("POST", "/api/stream/message", json={"message": "Hi there"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = read_sse(response)

    kinds = [e["type"] for _, e in events]
    assert kinds[0] == "started" and kinds[-1] == "completed"
    assert set(kinds[1:-1]) <= {"token", "metrics"}
    tokens = [e["token"] for _, e in events if e["type"] == "token"]
    # It streams: tokens arrive spread over time, not in one lump at the end.
    first, last = events[1][0], events[-2][0]
    assert last - first > 0.5
    reply = Message.objects.get(pk=events[0][1]["run_id"])
    assert reply.content == "".join(tokens)
    assert reply.status == "completed" and reply.model_name == "offline"
    assert reply.thread.owner.is_guest

    # The conversation is there after a reload.
    thread_page = client.get(f"/t/{reply.thread_id}")
    assert "Hi there" in thread_page.text and "Offline model" in thread_page.text


@pytest.mark.django_db(transaction=True)
def test_bad_input_gets_a_clear_error(daphne_server) -> None:
    server = daphne_server()
    client = guest_session(server.url)
    cases = [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"message": "   "}', "'message' is required"),
        (json.dumps({"message": "x" * 40000}).encode(), "larger than the limit of 32768 bytes"),
    ]
    for body, expected in cases:
        response = client.post(
            "/api/stream/message", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400
        assert expected in response.json()["error"]
    assert Message.objects.count() == 0
    # The session is still usable.
    ok = client.post("/api/stream/message", json={"message": "still here?"})
    assert ok.status_code == 200 and sse_data(ok.text)[-1]["type"] == "completed"
