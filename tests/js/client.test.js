// static/chat/client.js with fakes only: a fake clock, WebSocket, EventSource and fetch.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ChatClient, PollTransport, RunFollower, SSETransport, WebSocketTransport, backoffDelay, nativeWireUrl,
} from "../../static/chat/client.js";

const RUN = "11111111-1111-1111-1111-111111111111";
const PIECES = ["Hel", "lo, ", "wor", "ld", "!"];
const TEXT = PIECES.join("");

// The run's native log: started, one delta per piece, completed.
function runLog(runId = RUN, pieces = PIECES, end = "completed") {
  const events = [{ run_id: runId, seq: 1, type: "started", thread_id: "t1", model: "m" }];
  for (const text of pieces) events.push({ run_id: runId, seq: events.length + 1, type: "delta", text, tokens: 1 });
  events.push({ run_id: runId, seq: events.length + 1, type: end, metrics: {}, ...(end === "failed" ? { error: "boom" } : {}) });
  return events;
}

const flush = async () => {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
};

function fakeClock() {
  const clock = {
    timers: [],
    delays: [],
    setTimeout(fn, ms) {
      clock.delays.push(ms);
      clock.timers.push(fn);
      return clock.timers.length;
    },
    clearTimeout() {},
    async tick() {
      const fn = clock.timers.shift();
      assert.ok(fn, "a timer is pending");
      fn();
      await flush();
    },
  };
  return clock;
}

class FakeWebSocket {
  static OPEN = 1;
  static all = [];
  constructor(url) {
    Object.assign(this, { url, sent: [], readyState: 0 });
    FakeWebSocket.all.push(this);
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  fail(code = 1006) { // error (and close) before or after opening
    this.readyState = 3;
    this.onerror?.({});
    this.onclose?.({ code });
  }
  closeBy(code) { // the server closes the connection cleanly
    this.readyState = 3;
    this.onclose?.({ code });
  }
  deliver(...events) { // the native wire (`?wire=native`): events as they are logged
    for (const event of events) this.onmessage?.({ data: JSON.stringify(event) });
  }
  message(payload) { // a connection-level message (run, watching, paused, errors, ...)
    this.onmessage?.({ data: typeof payload === "string" ? payload : JSON.stringify(payload) });
  }
}

class FakeEventSource {
  static CLOSED = 2;
  static all = [];
  constructor(url) {
    Object.assign(this, { url, readyState: 0, closed: false });
    FakeEventSource.all.push(this);
  }
  close() {
    this.readyState = 2;
    this.closed = true;
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  deliver(...events) {
    for (const event of events) this.onmessage?.({ data: JSON.stringify(event), lastEventId: String(event.seq) });
  }
  fail(state = 2) { // 2: gave up (CLOSED); 0: reconnecting by itself
    this.readyState = state;
    this.onerror?.({});
  }
}

function reset() {
  FakeWebSocket.all = [];
  FakeEventSource.all = [];
}

const json = (body, status = 200) => ({ ok: status < 300, status, json: async () => body });
// What a draining server answers (streaming/drain.py).
const restarting = () => ({
  ok: false, status: 503, headers: new Headers({ "Retry-After": "1" }), json: async () => ({ error: "This server is restarting; retry." }),
});

// A fake poll endpoint over `log`, `chunk` events per answer; `script(url, n)` may override.
function fakePollFetch(log, { chunk = 2, script } = {}) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, init });
    const scripted = script?.(url, calls.length);
    if (scripted) return scripted();
    const after = Number(new URL(url, "http://x").searchParams.get("after"));
    const events = log.filter((e) => e.seq > after).slice(0, chunk);
    const complete = events.length > 0 && events.at(-1).seq === log.at(-1).seq;
    return json({ events, complete, status: complete ? "completed" : "streaming" });
  };
  return { fetch, calls };
}

// Collects a follower's callbacks.
function recorder() {
  const seen = { events: [], texts: [], ends: [], errors: [] };
  seen.handlers = {
    onEvent: (e) => seen.events.push(e),
    onText: (t) => seen.texts.push(t),
    onEnd: (e) => seen.ends.push(e),
    onError: (e) => seen.errors.push(e),
  };
  return seen;
}

// A transport whose subscriptions the test drives by hand.
function manualTransport() {
  const transport = { subs: [] };
  transport.subscribe = (runId, after, handlers) => {
    const sub = { runId, after, handlers, closed: false, close: () => (sub.closed = true) };
    transport.subs.push(sub);
    return sub;
  };
  return transport;
}

test("the WebSocket asks for the native wire: ?wire=native on every URL", () => {
  assert.equal(nativeWireUrl("ws://h/ws/stream"), "ws://h/ws/stream?wire=native");
  assert.equal(nativeWireUrl("/ws/stream"), "/ws/stream?wire=native");
  assert.equal(nativeWireUrl("wss://h/ws/stream?a=1"), "wss://h/ws/stream?a=1&wire=native");
  assert.equal(nativeWireUrl("ws://h/ws/stream?wire=compact&a=1"), "ws://h/ws/stream?a=1&wire=native");
  assert.equal(nativeWireUrl("ws://h/ws/stream?wire=native"), "ws://h/ws/stream?wire=native");
  assert.equal(new WebSocketTransport({ WebSocket: FakeWebSocket }).url, "/ws/stream?wire=native");
  const saved = Object.getOwnPropertyDescriptor(globalThis, "location");
  try {
    Object.defineProperty(globalThis, "location", { value: { protocol: "https:", host: "chat.example:8443" }, configurable: true });
    assert.equal(new WebSocketTransport({ WebSocket: FakeWebSocket }).url, "wss://chat.example:8443/ws/stream?wire=native");
    globalThis.location.protocol = "http:";
    assert.equal(new WebSocketTransport({ WebSocket: FakeWebSocket }).url, "ws://chat.example:8443/ws/stream?wire=native");
  } finally {
    if (saved) Object.defineProperty(globalThis, "location", saved);
    else delete globalThis.location;
  }
});

test("WebSocket native wire: deltas, metrics and terminal events arrive as they are sent", async () => {
  reset();
  const client = new ChatClient({ WebSocket: FakeWebSocket, ...fakeClock() });
  const connected = client.connect();
  const ws = FakeWebSocket.all[0];
  assert.equal(ws.url, "/ws/stream?wire=native");
  ws.open();
  await connected;
  const seen = recorder();
  client.follow(RUN, seen.handlers);
  const events = [
    { run_id: RUN, seq: 1, type: "started", thread_id: "t1", model: "m" },
    { run_id: RUN, seq: 2, type: "delta", text: "Hel", tokens: 1, token_count: 1, elapsed: 0.12, ttft_seconds: 0.12 },
    { run_id: RUN, seq: 3, type: "delta", text: "lo", tokens: 2, token_count: 3, elapsed: 0.2 },
    { run_id: RUN, seq: 4, type: "metrics", metrics: { ttft_seconds: 0.12, token_count: 3, duration_seconds: 0.25, tokens_per_second: 12 } },
    { run_id: RUN, seq: 5, type: "completed", metrics: { ttft_seconds: 0.12, token_count: 3, duration_seconds: 0.3, tokens_per_second: 10 } },
  ];
  ws.deliver(...events);
  assert.deepEqual(seen.events, events, "unchanged: no translation step");
  assert.deepEqual(seen.texts, ["Hel", "Hello"]);
  assert.deepEqual(seen.ends, [events.at(-1)]);
  assert.equal(seen.ends[0].metrics.duration_seconds, 0.3);

  for (const type of ["failed", "interrupted", "stopped"]) {
    const runId = `run-${type}`;
    const ended = recorder();
    client.follow(runId, ended.handlers);
    const terminal = {
      run_id: runId, seq: 3, type, metrics: { token_count: 1, duration_seconds: 1.5 }, ...(type === "stopped" ? {} : { error: "Model down" }),
    };
    ws.deliver(
      { run_id: runId, seq: 1, type: "started", thread_id: "t1" },
      { run_id: runId, seq: 2, type: "delta", text: "x", tokens: 1, token_count: 1, elapsed: 0.1 },
      terminal,
    );
    assert.deepEqual(ended.ends, [terminal], type);
    assert.deepEqual(ended.errors, [], `${type}: a terminal event, not a run-level error`);
    assert.equal(ended.texts.at(-1), "x");
  }
  client.close();
});

test("WebSocket native wire: connection messages have no seq and are not run events", async () => {
  reset();
  const errors = [];
  const client = new ChatClient({ WebSocket: FakeWebSocket, onError: (message, event) => errors.push([message, event]), ...fakeClock() });
  const connected = client.connect();
  const ws = FakeWebSocket.all[0];
  ws.open();
  await connected;
  const seen = recorder();
  client.follow(RUN, seen.handlers);
  const log = runLog();
  ws.deliver(...log.slice(0, 2));
  ws.message({ type: "watching", thread_id: "t1" });
  ws.message({ type: "paused", sent: { [RUN]: 2 } });
  ws.message({ type: "resumed" });
  ws.message({ type: "stopped", run_id: null }); // stop with nothing running
  ws.message("not json");
  ws.message("[1, 2]");
  ws.message("null");
  assert.deepEqual(seen.events.map((e) => e.seq), [1, 2]);
  assert.equal(seen.ends.length, 0, "the control `stopped` does not end a run");
  assert.deepEqual(errors, []);

  // A command error naming a run (following it failed): retried once, from the last seq.
  ws.message({ type: "error", error: "The stream failed unexpectedly", command: "subscribe", run_id: RUN });
  assert.deepEqual(ws.sent.at(-1), { command: "subscribe", run_id: RUN, after: 2 });
  ws.message({ type: "error", error: "This reply's event log has expired", command: "subscribe", run_id: RUN, code: "expired" });
  assert.deepEqual(seen.errors, ["This reply's event log has expired"]);

  // Any other command error goes to onError, with the whole message.
  const refusal = { type: "error", error: "Unknown command", command: "dance", code: "bad_command" };
  ws.message(refusal);
  assert.deepEqual(errors, [["Unknown command", refusal]]);
  client.close();
});

test("dedupe: duplicated and replayed events are ignored; the text is exact", () => {
  const seen = recorder();
  const follower = new RunFollower(RUN, seen.handlers);
  const transport = manualTransport();
  follower.follow(transport);
  const log = runLog();
  const { onEvent } = transport.subs[0].handlers;
  for (const event of log.slice(0, 4)) {
    onEvent(event);
    onEvent(event); // duplicated at once
  }
  for (const event of log.slice(0, 4)) onEvent(event); // replayed from the start
  for (const event of log.slice(2)) onEvent(event); // overlapping replay to the end
  for (const event of log) onEvent(event); // after the end
  assert.equal(follower.text, TEXT);
  assert.equal(seen.texts.at(-1), TEXT);
  assert.deepEqual(seen.events.map((e) => e.seq), log.map((e) => e.seq));
  assert.equal(seen.ends.length, 1);
  assert.equal(seen.ends[0].type, "completed");
  assert.equal(follower.lastSeq, log.length);
  assert.equal(transport.subs.length, 1);
  assert.ok(transport.subs[0].closed, "closed after the terminal event");
});

test("gap: a skipped seq resubscribes from lastSeq instead of applying the event", () => {
  const seen = recorder();
  const follower = new RunFollower(RUN, seen.handlers);
  const transport = manualTransport();
  follower.follow(transport);
  const log = runLog();
  const first = transport.subs[0].handlers;
  first.onEvent(log[0]);
  first.onEvent(log[1]);
  first.onEvent(log[3]); // seq 4 after 2: a gap
  assert.equal(transport.subs.length, 2);
  assert.ok(transport.subs[0].closed);
  assert.equal(transport.subs[1].after, 2);
  assert.equal(follower.text, PIECES[0]);
  first.onEvent(log[2]); // late events of the replaced subscription are ignored
  assert.equal(follower.lastSeq, 2);
  transport.subs[1].handlers.onEvent(log[4]); // a gap again from the same position: no second resubscribe
  assert.equal(transport.subs.length, 2);
  for (const event of log.slice(2)) transport.subs[1].handlers.onEvent(event);
  assert.equal(follower.text, TEXT);
  assert.equal(seen.ends.length, 1);
});

test("a run-level error is retried once, then reported; a fatal one at once", () => {
  const seen = recorder();
  const follower = new RunFollower(RUN, seen.handlers);
  const transport = manualTransport();
  follower.follow(transport);
  transport.subs[0].handlers.onError("The stream failed unexpectedly");
  assert.equal(transport.subs.length, 2);
  transport.subs[1].handlers.onError("This reply's event log has expired");
  assert.deepEqual(seen.errors, ["This reply's event log has expired"]);
  assert.ok(follower.done);

  const other = recorder();
  const fatal = new RunFollower(RUN, other.handlers);
  fatal.follow(transport);
  transport.subs.at(-1).handlers.onError("Not found", { fatal: true });
  assert.deepEqual(other.errors, ["Not found"]);
});

test("backoff: delays double from 0.5 s, cap at 8 s, jitter only shortens", () => {
  const none = () => 0;
  assert.deepEqual([0, 1, 2, 3, 4, 5, 9].map((n) => backoffDelay(n, { random: none })), [500, 1000, 2000, 4000, 8000, 8000, 8000]);
  for (let n = 0; n < 8; n++) {
    const full = Math.min(8000, 500 * 2 ** n);
    const jittered = backoffDelay(n, { random: () => 1 });
    assert.ok(jittered <= full && jittered >= full * 0.8, `${n}: ${jittered}`);
  }
  assert.equal(backoffDelay(0, { base: 100, max: 150, jitter: 0 }), 100);
  assert.equal(backoffDelay(3, { base: 100, max: 150, jitter: 0 }), 150);
});

test("backoff through the client: failed reconnects wait longer and longer, capped", async () => {
  reset();
  const clock = fakeClock();
  const client = new ChatClient({ transports: ["websocket", "sse"], WebSocket: FakeWebSocket, EventSource: FakeEventSource, random: () => 0, ...clock });
  const connected = client.connect();
  FakeWebSocket.all[0].open();
  assert.equal(await connected, "websocket");
  FakeWebSocket.all[0].fail(); // drops after having worked: reconnect, no fallback
  for (let i = 1; i <= 6; i++) {
    await clock.tick();
    FakeWebSocket.all[i].fail(); // every reconnect fails before opening
    await flush();
  }
  assert.deepEqual(clock.delays, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
  assert.equal(client.state, "reconnecting");
  assert.equal(FakeEventSource.all.length, 0);
  await clock.tick();
  FakeWebSocket.all[7].open(); // success resets the backoff
  await flush();
  assert.equal(client.state, "open");
  FakeWebSocket.all[7].fail();
  assert.equal(clock.delays.at(-1), 500);
  client.close();
});

test("resume on WebSocket: reconnects after a drop and subscribes after the last seq", async () => {
  reset();
  const clock = fakeClock();
  const statuses = [];
  const client = new ChatClient({ WebSocket: FakeWebSocket, wsUrl: "ws://test/ws/stream", onStatus: (s) => statuses.push(s), ...clock });
  const connected = client.connect();
  const first = FakeWebSocket.all[0];
  assert.equal(first.url, "ws://test/ws/stream?wire=native");
  first.open();
  assert.equal(await connected, "websocket");
  const seen = recorder();
  client.follow(RUN, seen.handlers);
  assert.deepEqual(first.sent, [{ command: "subscribe", run_id: RUN, after: 0 }]);
  const log = runLog();
  first.deliver(...log.slice(0, 3)); // up to seq 3
  first.fail(); // dropped
  assert.equal(client.state, "reconnecting");
  first.deliver(log[3]); // nothing arrives on a dropped socket's handlers
  await clock.tick();
  const second = FakeWebSocket.all[1];
  second.open();
  await flush();
  assert.deepEqual(second.sent, [{ command: "subscribe", run_id: RUN, after: 3 }]);
  second.deliver(...log.slice(1)); // even a server that replays too much
  assert.equal(seen.texts.at(-1), TEXT);
  assert.equal(seen.ends.length, 1);
  assert.deepEqual(seen.events.map((e) => e.seq), log.map((e) => e.seq));
  assert.deepEqual(statuses.map((s) => `${s.transport}:${s.state}`), ["websocket:connecting", "websocket:open", "websocket:reconnecting", "websocket:open"]);
  client.close();
});

test("resume on SSE: a new EventSource with after = last seq, closed at the end", async () => {
  reset();
  const clock = fakeClock();
  const client = new ChatClient({ prefer: "sse", EventSource: FakeEventSource, ...clock });
  assert.equal(await client.connect(), "sse");
  const seen = recorder();
  client.follow(RUN, seen.handlers);
  const first = FakeEventSource.all[0];
  assert.equal(first.url, `/api/runs/${RUN}/events?after=0`);
  const log = runLog();
  first.open();
  first.deliver(...log.slice(0, 2));
  first.fail(0); // EventSource reconnects by itself (Last-Event-ID): nothing to do
  assert.equal(client.state, "reconnecting");
  first.open();
  assert.equal(client.state, "open");
  first.deliver(log[2]); // seq 3
  first.fail(2); // now it gave up: the client reconnects
  assert.ok(first.closed);
  await clock.tick();
  const second = FakeEventSource.all[1];
  assert.equal(second.url, `/api/runs/${RUN}/events?after=3`);
  second.open();
  second.deliver(...log.slice(3));
  assert.equal(seen.texts.at(-1), TEXT);
  assert.equal(seen.ends.length, 1);
  assert.ok(second.closed, "closed on the terminal event");
  assert.equal(FakeEventSource.all.length, 2);
  client.close();
});

test("resume on polling: a failed request, then polling resumes after the last seq", async () => {
  reset();
  const clock = fakeClock();
  const log = runLog();
  const poll = fakePollFetch(log, {
    chunk: 3,
    script: (url, n) => n === 2 && (() => Promise.reject(new TypeError("network down"))),
  });
  const statuses = [];
  const client = new ChatClient({ prefer: "poll", fetch: poll.fetch, onStatus: (s) => statuses.push(s.state), ...clock });
  assert.equal(await client.connect(), "poll");
  const seen = recorder();
  client.follow(RUN, seen.handlers);
  await flush();
  assert.equal(client.state, "reconnecting");
  assert.equal(seen.texts.at(-1), PIECES.slice(0, 2).join(""));
  await clock.tick();
  assert.deepEqual(poll.calls.map((c) => c.url), [
    `/api/runs/${RUN}/poll?after=0&wait=20`,
    `/api/runs/${RUN}/poll?after=3&wait=20`, // failed
    `/api/runs/${RUN}/poll?after=3&wait=20`,
    `/api/runs/${RUN}/poll?after=6&wait=20`,
  ]);
  assert.equal(seen.texts.at(-1), TEXT);
  assert.equal(seen.ends.length, 1);
  assert.deepEqual(statuses, ["connecting", "open", "reconnecting", "open"]);
  client.close();
});

test("polling: an expired log ends the run; a 404 is reported, not retried", async () => {
  const ended = recorder();
  const expired = new PollTransport({ fetch: async () => json({ events: [], complete: true, status: "stopped" }) });
  new RunFollower(RUN, { ...ended.handlers, after: 4 }).follow(expired);
  await flush();
  assert.deepEqual(ended.ends, [{ run_id: RUN, seq: 4, type: "stopped", incomplete: true }]);

  const missing = recorder();
  let calls = 0;
  const gone = new PollTransport({ fetch: async () => (calls++, json({ error: "No such reply." }, 404)) });
  new RunFollower(RUN, missing.handlers).follow(gone);
  await flush();
  assert.deepEqual(missing.errors, ["No such reply."]);
  assert.equal(calls, 1);
});

test("fallback: WebSocket fails before opening -> SSE; EventSource fails -> polling", async () => {
  reset();
  const clock = fakeClock();
  const statuses = [];
  const log = runLog();
  const poll = fakePollFetch(log, { chunk: 4 });
  const client = new ChatClient({
    WebSocket: FakeWebSocket, EventSource: FakeEventSource, fetch: poll.fetch, onStatus: (s) => statuses.push(`${s.transport}:${s.state}`), ...clock,
  });
  const connected = client.connect();
  FakeWebSocket.all[0].fail();
  assert.equal(await connected, "sse");
  assert.equal(client.transportName, "sse");
  const seen = recorder();
  client.follow(RUN, seen.handlers);
  FakeEventSource.all[0].fail(2); // an error before any message, readyState CLOSED
  await flush();
  assert.equal(client.transportName, "poll");
  assert.equal(seen.texts.at(-1), TEXT);
  assert.equal(seen.ends.length, 1);
  assert.deepEqual(statuses, [
    "websocket:connecting", "websocket:closed", "sse:connecting", "sse:open", "sse:closed", "poll:connecting", "poll:open",
  ]);
  assert.equal(clock.delays.length, 0, "falling back does not wait");
  client.close();
  assert.equal(statuses.at(-1), "poll:closed");
});

test("fallback: no WebSocket at all (constructor throws or is missing) -> SSE", async () => {
  const client = new ChatClient({
    WebSocket: class { constructor() { throw new Error("blocked"); } }, EventSource: FakeEventSource, ...fakeClock(),
  });
  assert.equal(await client.connect(), "sse");
  const bare = new ChatClient({ transports: ["websocket", "poll"], factories: { websocket: () => new WebSocketTransport({ WebSocket: undefined, url: "ws://x" }) }, fetch: async () => json({}), ...fakeClock() });
  assert.equal(await bare.connect(), "poll");
});

test("forced transport: prefer 'poll' polls directly", async () => {
  reset();
  const made = [];
  const log = runLog();
  const poll = fakePollFetch(log, { chunk: 10 });
  const statuses = [];
  const factories = {
    websocket: () => made.push("websocket") && new WebSocketTransport({ WebSocket: FakeWebSocket, url: "ws://x" }),
    sse: () => made.push("sse") && new SSETransport({ EventSource: FakeEventSource }),
    poll: (o) => made.push("poll") && new PollTransport({ fetch: o.fetch, setTimeout: o.setTimeout }),
  };
  const client = new ChatClient({ prefer: "poll", factories, fetch: poll.fetch, onStatus: (s) => statuses.push(s), ...fakeClock() });
  assert.equal(await client.connect(), "poll");
  const seen = recorder();
  client.follow(RUN, seen.handlers);
  await flush();
  assert.deepEqual(made, ["poll"]);
  assert.equal(FakeWebSocket.all.length + FakeEventSource.all.length, 0);
  assert.deepEqual(statuses, [{ transport: "poll", state: "connecting" }, { transport: "poll", state: "open" }]);
  assert.equal(seen.texts.at(-1), TEXT);
});

test("send over HTTP creates the thread, posts with the CSRF token, follows; stop posts", async () => {
  reset();
  const log = runLog();
  const requests = [];
  const events = fakePollFetch(log, { chunk: 10 });
  const fetch = async (url, init = {}) => {
    if (init.method !== "POST") return events.fetch(url, init);
    requests.push({ url, headers: init.headers, body: JSON.parse(init.body) });
    if (url === "/api/threads") return json({ id: "t1", title: "New" }, 201);
    if (url === "/api/threads/t1/messages") return json({ run_id: RUN, message_id: RUN, thread_id: "t1" }, 201);
    if (url === `/api/runs/${RUN}/stop`) return json({ run_id: RUN, stopping: true }, 202);
    return json({ error: "Too many messages." }, 429);
  };
  const client = new ChatClient({ prefer: "poll", fetch, csrfToken: "tok", ...fakeClock() });
  await client.connect();
  const seen = recorder();
  const sent = await client.send("Hello", { options: { flush_ms: 50 }, ...seen.handlers });
  assert.equal(sent.run_id, RUN);
  assert.equal(sent.thread_id, "t1");
  await flush();
  assert.equal(seen.texts.at(-1), TEXT);
  const clientId = requests[1].body.client_id;
  assert.match(clientId, /^[0-9a-f-]{32,36}$/);
  assert.deepEqual(requests.map((r) => [r.url, r.body]), [
    ["/api/threads", {}], ["/api/threads/t1/messages", { message: "Hello", flush_ms: 50, client_id: clientId }],
  ]);
  assert.equal(requests[1].headers["X-CSRFToken"], "tok");
  assert.equal(requests[1].headers["Content-Type"], "application/json");
  assert.deepEqual(await client.stop(RUN), { run_id: RUN, stopping: true });
  await assert.rejects(client.send("again", { threadId: "t2" }), { status: 429, message: "Too many messages." });
});

test("WebSocket: start, announcements, failures as terminal events, command errors", async () => {
  reset();
  const announced = [];
  const errors = [];
  const fetched = [];
  const client = new ChatClient({
    WebSocket: FakeWebSocket, onRunAnnounced: (r) => announced.push(r), onError: (e) => errors.push(e),
    fetch: async (url) => (fetched.push(url), json({ run_id: RUN, stopping: true }, 202)), ...fakeClock(),
  });
  const connected = client.connect();
  const ws = FakeWebSocket.all[0];
  ws.open();
  await connected;

  const seen = recorder();
  const sending = client.send("Hi", { threadId: "t1", ...seen.handlers });
  const { client_id: clientId, ...start } = ws.sent.at(-1);
  assert.deepEqual(start, { command: "start", message: "Hi", thread_id: "t1" });
  assert.match(clientId, /^[0-9a-f-]{32,36}$/);
  // Meanwhile another tab's run is announced: its events do not answer our start, and are
  // kept until someone follows the run.
  const other = "22222222-2222-2222-2222-222222222222";
  ws.onmessage({ data: JSON.stringify({ type: "run", run_id: other, thread_id: "t1", message: "hello from tab 2" }) });
  ws.deliver(...runLog(other, ["x"]).slice(0, 2));
  const log = runLog(RUN, PIECES, "failed");
  ws.deliver(log[0]); // the first event of an unannounced run answers the start
  const sent = await sending;
  assert.equal(sent.run_id, RUN);
  ws.deliver(...log.slice(1));
  assert.equal(seen.texts.at(-1), TEXT);
  assert.equal(seen.ends.length, 1);
  assert.equal(seen.ends[0].type, "failed");
  assert.equal(seen.ends[0].error, "boom");
  assert.deepEqual(announced, [{ run_id: other, thread_id: "t1", message: "hello from tab 2", branch: false }]);
  // A regenerated reply elsewhere: a new version, which the page shows by reading the thread.
  const version = "33333333-3333-3333-3333-333333333333";
  ws.onmessage({ data: JSON.stringify({ type: "run", run_id: version, thread_id: "t1", message: "", branch: true }) });
  assert.deepEqual(announced.at(-1), { run_id: version, thread_id: "t1", message: "", branch: true });

  const late = recorder();
  client.follow(other, late.handlers); // gets the events kept so far, then live ones
  assert.deepEqual(ws.sent.at(-1), { command: "subscribe", run_id: other, after: 0 });
  assert.equal(late.texts.at(-1), "x");

  await client.stop(RUN); // over HTTP whatever the transport
  assert.deepEqual(fetched, [`/api/runs/${RUN}/stop`]);

  const refused = client.send("Too much");
  ws.onmessage({ data: JSON.stringify({ type: "error", error: "Slow down.", command: "start" }) });
  await assert.rejects(refused, /Slow down/);
  ws.onmessage({ data: JSON.stringify({ type: "error", error: "Unknown command" }) });
  assert.deepEqual(errors, ["Unknown command"]);

  client.watch("t9");
  client.transport.pause();
  client.transport.resume();
  assert.deepEqual(ws.sent.slice(-3), [{ command: "watch", thread_id: "t9" }, { command: "pause" }, { command: "resume" }]);
  client.close();
});

test("WebSocket reconnect re-watches threads and resumes every unfinished run", async () => {
  reset();
  const clock = fakeClock();
  const client = new ChatClient({ WebSocket: FakeWebSocket, ...clock });
  const connected = client.connect();
  FakeWebSocket.all[0].open();
  await connected;
  client.watch("t1");
  const a = recorder();
  const b = recorder();
  const logA = runLog(RUN);
  const logB = runLog("r2", ["a", "b"]);
  client.follow(RUN, a.handlers);
  client.follow("r2", b.handlers);
  FakeWebSocket.all[0].deliver(...logA.slice(0, 2), ...logB); // r2 ends
  FakeWebSocket.all[0].fail();
  await clock.tick();
  FakeWebSocket.all[1].open();
  await flush();
  assert.deepEqual(FakeWebSocket.all[1].sent, [
    { command: "watch", thread_id: "t1" },
    { command: "subscribe", run_id: RUN, after: 2 },
  ]);
  FakeWebSocket.all[1].deliver(...logA.slice(2));
  assert.equal(a.texts.at(-1), TEXT);
  assert.equal(b.texts.at(-1), "ab");
  assert.equal(a.ends.length + b.ends.length, 2);
  client.close();
});

test("follow() connects on demand; close() then connect() resumes from the last seq", async () => {
  reset();
  const clock = fakeClock();
  const statuses = [];
  const client = new ChatClient({ prefer: "sse", EventSource: FakeEventSource, onStatus: (s) => statuses.push(s.state), ...clock });
  const seen = recorder();
  client.follow(RUN, seen.handlers); // no connect() yet
  await flush();
  assert.equal(client.transportName, "sse");
  const log = runLog();
  FakeEventSource.all[0].deliver(...log.slice(0, 3));
  client.close();
  assert.ok(FakeEventSource.all[0].closed);
  FakeEventSource.all[0].deliver(log[3]); // nothing after close()
  client.follow("r-other"); // closed: does not reconnect by itself
  await flush();
  assert.equal(FakeEventSource.all.length, 1);
  assert.equal(await client.connect(), "sse");
  const urls = FakeEventSource.all.slice(1).map((es) => es.url);
  assert.deepEqual(urls, [`/api/runs/${RUN}/events?after=3`, "/api/runs/r-other/events?after=0"]);
  FakeEventSource.all[1].deliver(...log.slice(3));
  assert.equal(seen.texts.at(-1), TEXT);
  assert.equal(seen.ends.length, 1);
  assert.deepEqual(statuses, ["connecting", "open", "closed", "connecting", "open"]);
  client.close();
});

test("a close() during connecting abandons that attempt", async () => {
  reset();
  const client = new ChatClient({ WebSocket: FakeWebSocket, EventSource: FakeEventSource, ...fakeClock() });
  client.connect();
  client.close();
  const again = client.connect();
  FakeWebSocket.all[0].fail(); // the abandoned attempt fails: no fallback because of it
  await flush();
  assert.equal(FakeEventSource.all.length, 0);
  assert.equal(client.index, 0);
  FakeWebSocket.all[1].open();
  assert.equal(await again, "websocket");
  client.close();
});

test("SSETransport alone: after= in the URL, native events, closed on the terminal event", () => {
  reset();
  const transport = new SSETransport({ EventSource: FakeEventSource, baseUrl: "/base" });
  const events = [];
  transport.subscribe(RUN, 2, { onEvent: (e) => events.push(e) });
  const source = FakeEventSource.all[0];
  assert.equal(source.url, `/base/api/runs/${RUN}/events?after=2`);
  source.onmessage({ data: "not json" });
  source.deliver(...runLog().slice(2));
  assert.deepEqual(events.map((e) => e.seq), [3, 4, 5, 6, 7]);
  assert.ok(source.closed, "EventSource closed so that it does not reconnect");
});

test("WebSocket closed with 1012 (server restarting): reconnects at once, resumes after the last seq", async () => {
  reset();
  const clock = fakeClock();
  const statuses = [];
  const client = new ChatClient({ WebSocket: FakeWebSocket, random: () => 0, onStatus: (s) => statuses.push(s.state), ...clock });
  const connected = client.connect();
  FakeWebSocket.all[0].open();
  await connected;
  const seen = recorder();
  client.follow(RUN, seen.handlers);
  const log = runLog();
  FakeWebSocket.all[0].deliver(...log.slice(0, 3));
  FakeWebSocket.all[0].closeBy(1012);
  await flush();
  assert.equal(FakeWebSocket.all.length, 2, "a new connection at once");
  assert.deepEqual(clock.delays, [], "without waiting");
  FakeWebSocket.all[1].fail(); // reached the draining server again: refused
  await flush();
  assert.deepEqual(clock.delays, [500], "later attempts back off as usual");
  await clock.tick();
  const next = FakeWebSocket.all[2];
  next.open();
  await flush();
  assert.deepEqual(next.sent, [{ command: "subscribe", run_id: RUN, after: 3 }]);
  next.deliver(...log.slice(3));
  assert.equal(seen.texts.at(-1), TEXT);
  assert.deepEqual(seen.events.map((e) => e.seq), log.map((e) => e.seq));
  assert.equal(seen.ends.length, 1);
  assert.deepEqual(statuses, ["connecting", "open", "reconnecting", "open"]);

  next.closeBy(1006); // any other drop waits the backoff delay first
  await flush();
  assert.equal(FakeWebSocket.all.length, 3);
  assert.deepEqual(clock.delays, [500, 500]);
  client.close();
});

test("503 (a server restarting) is retried, not fatal: start, polling and SSE", async () => {
  reset();
  const clock = fakeClock();
  const log = runLog();
  const posts = [];
  const events = fakePollFetch(log, { chunk: 3, script: (url, n) => n === 2 && restarting });
  const fetch = async (url, init = {}) => {
    if (init.method !== "POST") return events.fetch(url, init);
    posts.push(url);
    return posts.length <= 2 ? restarting() : json({ run_id: RUN, message_id: RUN, thread_id: "t1" }, 201);
  };
  const client = new ChatClient({ prefer: "poll", fetch, random: () => 0, ...clock });
  await client.connect();
  const seen = recorder();
  const sending = client.send("Hello", { threadId: "t1", ...seen.handlers });
  await flush();
  assert.deepEqual(clock.delays, [1000], "after Retry-After");
  await clock.tick();
  await clock.tick();
  const sent = await sending;
  assert.equal(sent.run_id, RUN);
  assert.equal(posts.length, 3);
  await flush(); // the first poll answers; the second gets a 503
  assert.equal(client.state, "reconnecting");
  await clock.tick();
  assert.deepEqual(events.calls.map((c) => c.url), [
    `/api/runs/${RUN}/poll?after=0&wait=20`,
    `/api/runs/${RUN}/poll?after=3&wait=20`, // 503
    `/api/runs/${RUN}/poll?after=3&wait=20`,
    `/api/runs/${RUN}/poll?after=6&wait=20`,
  ]);
  assert.equal(seen.texts.at(-1), TEXT);
  assert.equal(seen.ends.length, 1);
  client.close();

  const stubborn = new ChatClient({ prefer: "poll", fetch: async () => restarting(), random: () => 0, ...clock });
  const refused = assert.rejects(stubborn.send("Hello", { threadId: "t1" }), { status: 503, message: "This server is restarting; retry." });
  await flush();
  for (let i = 0; i < 5; i++) await clock.tick(); // five retries, then the error
  await refused;

  // SSE: EventSource hides the status; one that gives up after having worked is reconnected.
  reset();
  const sse = new ChatClient({ transports: ["sse", "poll"], EventSource: FakeEventSource, random: () => 0, ...clock });
  await sse.connect();
  const followed = recorder();
  sse.follow(RUN, followed.handlers);
  FakeEventSource.all[0].open();
  FakeEventSource.all[0].deliver(...log.slice(0, 2));
  FakeEventSource.all[0].fail(2); // the stream ended and the reconnect got a 503: CLOSED
  await clock.tick();
  assert.equal(sse.transportName, "sse", "no fallback to polling");
  assert.equal(FakeEventSource.all[1].url, `/api/runs/${RUN}/events?after=2`);
  FakeEventSource.all[1].open();
  FakeEventSource.all[1].deliver(...log.slice(2));
  assert.equal(followed.texts.at(-1), TEXT);
  sse.close();
});


test("a send that fails on the network is retried with the same client_id; other posts are not", async () => {
  reset();
  const clock = fakeClock();
  const bodies = [];
  let failures = 2;
  const fetch = async (url, init = {}) => {
    if (init.method !== "POST") return json({ events: [], complete: false, status: "streaming" });
    bodies.push(JSON.parse(init.body));
    if (url.endsWith("/messages") && failures-- > 0) throw new TypeError("Failed to fetch");
    return json({ run_id: RUN, message_id: RUN, thread_id: "t1" }, 201);
  };
  const client = new ChatClient({ prefer: "poll", fetch, random: () => 0, ...clock });
  const sending = client.send("Hello", { threadId: "t1" });
  await flush();
  await clock.tick();
  await clock.tick();
  assert.equal((await sending).run_id, RUN);
  assert.equal(bodies.length, 3);
  assert.equal(new Set(bodies.map((b) => b.client_id)).size, 1, "one id for every attempt");
  const next = client.send("Hello again", { threadId: "t1" });
  assert.equal((await next).run_id, RUN);
  assert.notEqual(bodies.at(-1).client_id, bodies[0].client_id, "a new message, a new id");
  client.close();

  const offline = new ChatClient({ prefer: "poll", fetch: async () => { throw new TypeError("Failed to fetch"); }, ...clock });
  await assert.rejects(offline.stop(RUN), TypeError); // not a message: not retried
});

test("a WebSocket that closes before answering a start: the same message goes over HTTP", async () => {
  reset();
  const posts = [];
  const fetch = async (url, init = {}) => {
    if (init.method === "DELETE") {
      posts.push({ url, method: "DELETE" });
      return { ok: true, status: 204, json: async () => ({}) };
    }
    if (init.method !== "POST") return json({ events: [], complete: false, status: "streaming" });
    const body = JSON.parse(init.body);
    posts.push({ url, body });
    if (url === "/api/threads") return json({ id: "t-new" }, 201);
    // The socket's attempt got through, in a thread of its own: the same client_id attaches.
    return json({ run_id: RUN, message_id: RUN, thread_id: "t-ws" }, 200);
  };
  const client = new ChatClient({ WebSocket: FakeWebSocket, fetch, ...fakeClock() });
  const connected = client.connect();
  FakeWebSocket.all[0].open();
  await connected;
  const sending = client.send("Hi");
  const { client_id: clientId } = FakeWebSocket.all[0].sent.at(-1);
  FakeWebSocket.all[0].closeBy(1012); // the server restarts before answering
  const sent = await sending;
  assert.deepEqual([sent.run_id, sent.thread_id], [RUN, "t-ws"]);
  assert.deepEqual(posts, [
    { url: "/api/threads", body: {} },
    { url: "/api/threads/t-new/messages", body: { message: "Hi", client_id: clientId } },
    { url: "/api/threads/t-new", method: "DELETE" }, // the thread made for nothing
  ]);
  client.close();

  // Refused by the server (not a closed connection): an error, no second attempt.
  reset();
  const strict = new ChatClient({ WebSocket: FakeWebSocket, fetch, ...fakeClock() });
  const opened = strict.connect();
  FakeWebSocket.all[0].open();
  await opened;
  posts.length = 0;
  const refused = strict.send("Too much", { threadId: "t1" });
  FakeWebSocket.all[0].onmessage({ data: JSON.stringify({ type: "error", error: "Slow down.", command: "start" }) });
  await assert.rejects(refused, /Slow down/);
  assert.deepEqual(posts, []);
  strict.close();
});

test("request(): POST by default; PATCH with a body; DELETE and GET without one; a 204 is null", async () => {
  const calls = [];
  const answers = [
    json({ id: "t1", title: "New" }, 201),
    json({ id: "t1", title: "Renamed" }),
    { ok: true, status: 204, json: async () => { throw new SyntaxError("Unexpected end of JSON input"); } },
    json({ id: "t1", title: "Renamed" }),
    json({ error: "No such conversation." }, 404),
    { ok: false, status: 500, json: async () => { throw new SyntaxError("not JSON"); } },
  ];
  const fetch = async (url, init) => (calls.push({ url, ...init }), answers.shift());
  const client = new ChatClient({ fetch, csrfToken: "tok", baseUrl: "/base", ...fakeClock() });

  assert.deepEqual(await client.request("/api/threads", {}), { id: "t1", title: "New" });
  assert.deepEqual(await client.request("/api/threads/t1", { title: "Renamed" }, { method: "PATCH" }), { id: "t1", title: "Renamed" });
  assert.equal(await client.request("/api/threads/t1", undefined, { method: "DELETE" }), null);
  assert.deepEqual(await client.request("/api/threads/t1", undefined, { method: "GET" }), { id: "t1", title: "Renamed" });
  await assert.rejects(client.request("/api/threads/t2", { title: "x" }, { method: "PATCH" }), {
    status: 404, message: "No such conversation.", data: { error: "No such conversation." },
  });
  await assert.rejects(client.request("/api/threads/t2", undefined, { method: "DELETE" }), { status: 500, message: "HTTP 500" });

  assert.deepEqual(calls.map((c) => [c.method, c.url, c.body]), [
    ["POST", "/base/api/threads", "{}"],
    ["PATCH", "/base/api/threads/t1", '{"title":"Renamed"}'],
    ["DELETE", "/base/api/threads/t1", undefined],
    ["GET", "/base/api/threads/t1", undefined],
    ["PATCH", "/base/api/threads/t2", '{"title":"x"}'],
    ["DELETE", "/base/api/threads/t2", undefined],
  ]);
  for (const call of calls) {
    assert.equal(call.credentials, "same-origin");
    assert.equal(call.headers["X-CSRFToken"], "tok");
    assert.equal(call.headers.Accept, "application/json");
    assert.equal(call.headers["Content-Type"], call.body === undefined ? undefined : "application/json", call.method);
    assert.equal("body" in call, call.body !== undefined, `${call.method}: no body key without a body`);
  }
});

test("request(): a 503 is retried for PATCH and DELETE too; a network failure of one is not", async () => {
  const clock = fakeClock();
  const methods = [];
  let unavailable = 2;
  const fetch = async (url, init) => {
    methods.push(init.method);
    if (unavailable-- > 0) return restarting();
    return init.method === "DELETE" ? { ok: true, status: 204, json: async () => ({}) } : json({ id: "t1", title: "T" });
  };
  const client = new ChatClient({ fetch, random: () => 0, ...clock });
  const deleting = client.request("/api/threads/t1", undefined, { method: "DELETE" });
  await flush();
  await clock.tick();
  await clock.tick();
  assert.equal(await deleting, null);
  assert.deepEqual(methods, ["DELETE", "DELETE", "DELETE"]);
  assert.deepEqual(clock.delays, [1000, 1000], "after Retry-After");

  const offline = new ChatClient({ fetch: async () => { throw new TypeError("Failed to fetch"); }, ...fakeClock() });
  await assert.rejects(offline.request("/api/threads/t1", { title: "T" }, { method: "PATCH" }), TypeError);
});

test("request(): a 502 (a worker that died mid-request) is retried for a message with a client_id only", async () => {
  const clock = fakeClock();
  const bodies = [];
  let failing = 1;
  const badGateway = { ok: false, status: 502, headers: new Headers(), json: async () => ({}) };
  const fetch = async (url, init) => {
    bodies.push(init.body);
    if (failing-- > 0) return badGateway;
    return json({ run_id: "r1", thread_id: "t1" });
  };
  const client = new ChatClient({ fetch, random: () => 0, ...clock });
  const sending = client.request("/api/threads/t1/messages", { message: "Hi", client_id: "c1" });
  await flush();
  await clock.tick();
  assert.deepEqual(await sending, { run_id: "r1", thread_id: "t1" });
  assert.equal(bodies.length, 2);
  assert.equal(bodies[0], bodies[1], "the same client_id on the retry");

  const plain = new ChatClient({ fetch: async () => badGateway, ...fakeClock() });
  await assert.rejects(plain.request("/api/threads", {}), { status: 502 });
});

test("WebSocket: a notice that a conversation had a message reaches onThreadActive", async () => {
  reset();
  const active = [];
  const client = new ChatClient({ WebSocket: FakeWebSocket, onThreadActive: (t) => active.push(t), ...fakeClock() });
  const connected = client.connect();
  FakeWebSocket.all[0].open();
  await connected;
  FakeWebSocket.all[0].onmessage({ data: JSON.stringify({ type: "thread", thread_id: "t7", title: "Cats <b>" }) });
  assert.deepEqual(active, [{ thread_id: "t7", title: "Cats <b>" }]);
});
