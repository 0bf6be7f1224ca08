"""The wire layer: every registered shape formats every kind of event, encodes to JSON,
and says errors its own way; the seed shapes carry what the seed clients read."""

import json

import pytest

from streaming import events
from streaming.events import Event, Metrics
from streaming.wire import WIRES, Stream, encode, shape_for, sse

METRICS: Metrics = {"ttft_seconds": 0.2, "token_count": 2, "duration_seconds": 1.0, "tokens_per_second": 2.0}


def a_run(ending: events.TerminalType = "completed", error: str = "") -> list[Event]:
    return [
        events.started("r1", 1, thread_id="t1", model="m"),
        events.delta("r1", 2, text="Hé", tokens=1, token_count=1, elapsed=0.5, ttft_seconds=0.2),
        events.metrics("r1", 3, values=METRICS),
        events.delta("r1", 4, text="llo", tokens=1, token_count=2, elapsed=1.0),
        events.terminal("r1", 5, type=ending, values=METRICS, error=error),
    ]


@pytest.mark.parametrize("name", WIRES)
@pytest.mark.parametrize("ending", ["completed", "stopped", "failed", "interrupted"])
def test_every_wire_formats_every_event_as_json(name: str, ending: events.TerminalType) -> None:
    shape = shape_for(name, Stream(run_id="r1", client_id="c1"))
    error = "It broke." if ending in ("failed", "interrupted") else ""
    payloads = [shape.event(event) for event in a_run(ending, error)]
    sent = [json.loads(encode(p)) for p in payloads if p is not None]
    assert sent and sent[-1] is not None
    if error:
        assert "It broke." in json.dumps(sent[-1])  # every wire says why a reply failed
    refused = shape.error("No.")
    assert refused["error"] == "No." and json.loads(encode(refused)) == refused


def test_the_native_wire_is_the_log_and_the_seed_message_wire_is_tokens() -> None:
    run = a_run()
    native = shape_for("native", Stream(run_id="r1"))
    assert [native.event(e) for e in run] == run
    assert native.error("gone") == {"run_id": "r1", "type": "error", "error": "gone"}
    seed = shape_for("message")
    assert seed.event(run[1]) == {"type": "token", "token": "Hé", "run_id": "r1", "seq": 2}
    failed = seed.event(events.terminal("r1", 9, type="interrupted", values=METRICS, error="x"))
    assert failed is not None and (failed["type"], failed["error"], failed["status"]) == ("error", "x", "interrupted")


def test_the_monitored_wire_reports_the_seeds_metrics_from_the_runs() -> None:
    shape = shape_for("monitored")
    first = shape.event(a_run()[1])
    assert first == {
        "token": "Hé",
        "metrics": {"total_tokens": 1, "elapsed_seconds": 0.5, "ttft_seconds": 0.2, "throughput_tokens_per_sec": 2.0},
    }
    last = shape.event(a_run()[-1])
    assert last == {
        "type": "completed",
        "metrics": {"total_tokens": 2, "elapsed_seconds": 1.0, "ttft_seconds": 0.2, "throughput_tokens_per_sec": 2.0},
    }


def test_sse_frames_are_whole_events_with_the_seq_as_id() -> None:
    assert sse.data({"a": "é"}, seq=7) == 'id: 7\ndata: {"a":"é"}\n\n'.encode()
    assert sse.data({"a": 1}) == b'data: {"a":1}\n\n'
    assert sse.PREAMBLE == b"retry: 2000\n\n" and sse.HEARTBEAT == b": ping\n\n"
