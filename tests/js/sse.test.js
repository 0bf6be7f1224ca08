// The incremental SSE parser: events split anywhere across network reads are never lost.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SSEParser } from "../../static/chat/sse.js";

const STREAM =
  "retry: 2000\n\n" +
  'id: 1\ndata: {"seq":1,"type":"started"}\n\n' +
  ": ping\n\n" +
  'id: 2\ndata: {"seq":2,"type":"delta","text":"héllo 世界 🎉"}\n\n' +
  'id: 3\r\ndata: {"seq":3,"type":"completed"}\r\n\r\n';

function parseAll(chunks) {
  const parser = new SSEParser();
  return chunks.flatMap((chunk) => parser.push(chunk));
}

test("whole stream in one read", () => {
  const events = parseAll([STREAM]);
  assert.deepEqual(
    events.map((e) => [e.id, JSON.parse(e.data).type]),
    [["1", "started"], ["2", "delta"], ["3", "completed"]],
  );
  assert.equal(JSON.parse(events[1].data).text, "héllo 世界 🎉");
});

test("every split point gives the same events", () => {
  const expected = parseAll([STREAM]);
  for (let cut = 1; cut < STREAM.length; cut++) {
    assert.deepEqual(parseAll([STREAM.slice(0, cut), STREAM.slice(cut)]), expected, `cut at ${cut}`);
  }
});

test("one character per read", () => {
  assert.deepEqual(parseAll([...STREAM]), parseAll([STREAM]));
});

test("comments and retry-only blocks are not events; multi-line data is joined", () => {
  const events = parseAll([": hi\n\nretry: 5\n\ndata: a\ndata: b\n\n"]);
  assert.equal(events.length, 1);
  assert.equal(events[0].data, "a\nb");
});
