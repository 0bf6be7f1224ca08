// A transport-independent client for following runs (docs/api.md): WebSocket first, then
// Server-Sent Events, then long polling. Every transport hands native events to a RunFollower
// per run, which applies them strictly in `seq` order and resumes from the last one it applied,
// so a reply's text never duplicates or loses a piece across reconnects and fallbacks.

export const TERMINAL = new Set(["completed", "stopped", "failed", "interrupted"]);

// WebSocket close code 1012 (Service Restart): the server is draining before a restart.
// Another one can take over at once, so the first reconnect does not wait.
export const SERVICE_RESTART = 1012;

// A 503 (a server restarting, or none available) means the request was not processed:
// retried after its Retry-After (else the backoff delay), this many times.
const UNAVAILABLE_RETRIES = 5;

// A client id for a message: 128 random bits (randomUUID needs a secure context;
// getRandomValues does not).
export function newClientId() {
  const crypto = globalThis.crypto;
  if (crypto?.randomUUID) return crypto.randomUUID();
  const words = crypto?.getRandomValues
    ? Array.from(crypto.getRandomValues(new Uint32Array(4)))
    : Array.from({ length: 4 }, () => Math.floor(Math.random() * 2 ** 32));
  return words.map((n) => n.toString(16).padStart(8, "0")).join("");
}

// A JSON object from the wire (a native event or a control message), or null if the data is
// not a JSON object. Every transport receives native events (docs/api.md, Events): the
// WebSocket because it asks for them with `?wire=native`.
function parse(data) {
  try {
    const value = JSON.parse(data);
    return value !== null && typeof value === "object" && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

// Reconnect delay for attempt n (0, 1, ...): base doubling up to max, less up to `jitter` of
// it at random so that many clients do not reconnect in step.
export function backoffDelay(attempt, { base = 500, max = 8000, jitter = 0.2, random = Math.random } = {}) {
  return Math.round(Math.min(max, base * 2 ** attempt) * (1 - jitter * random()));
}

// Follows one run on a transport: dedupes by seq, resubscribes on a gap, builds the text.
export class RunFollower {
  constructor(runId, { after = 0, text = "", onEvent, onText, onEnd, onError } = {}) {
    Object.assign(this, { runId, lastSeq: after, text, onEvent, onText, onEnd, onError });
    Object.assign(this, { done: false, transport: null, sub: null, token: null });
    this.gapFrom = null; // the lastSeq we already resubscribed from because of a gap
    this.retried = false; // a run-level error was retried, with no progress since
  }

  // Subscribes on `transport` from lastSeq, replacing any earlier subscription.
  follow(transport) {
    this.detach();
    if (this.done) return;
    this.transport = transport;
    const token = (this.token = {}); // what a replaced subscription still delivers is ignored
    const live = () => this.token === token;
    this.sub = transport.subscribe(this.runId, this.lastSeq, {
      onEvent: (event) => live() && this.handle(event),
      onError: (error, options) => live() && this.fail(error, options),
      onComplete: (status) => live() && this.finish(status),
    });
  }

  detach() {
    const sub = this.sub;
    this.token = this.sub = null;
    sub?.close();
  }

  // Applies `event` if it is the next one; returns whether it was applied.
  handle(event) {
    if (this.done || typeof event.seq !== "number" || event.seq <= this.lastSeq) return false;
    if (event.seq > this.lastSeq + 1) {
      // A gap: fetch the missing events rather than skip them (once per position).
      if (this.gapFrom !== this.lastSeq && this.transport) {
        this.gapFrom = this.lastSeq;
        this.follow(this.transport);
      }
      return false;
    }
    this.lastSeq = event.seq;
    this.gapFrom = null;
    this.retried = false;
    this.onEvent?.(event);
    if (event.type === "delta") {
      this.text += event.text ?? "";
      this.onText?.(this.text);
    }
    if (TERMINAL.has(event.type)) this.end(() => this.onEnd?.(event));
    return true;
  }

  // A run-level error (not a dropped connection): retried once unless fatal, then reported.
  fail(error, { fatal = false } = {}) {
    if (this.done) return;
    if (fatal || this.retried || !this.transport) return this.end(() => this.onError?.(error));
    this.retried = true;
    this.follow(this.transport);
  }

  // The run ended without a terminal event we could see (its log expired): end it anyway.
  finish(status) {
    const type = TERMINAL.has(status) ? status : "interrupted";
    if (!this.done) this.end(() => this.onEnd?.({ run_id: this.runId, seq: this.lastSeq, type, incomplete: true }));
  }

  end(notify) {
    this.close();
    notify();
  }

  close() {
    this.done = true;
    this.detach();
  }
}

// Transports: connect() resolves when usable (rejects if it cannot connect);
// subscribe(runId, after, {onEvent, onError, onComplete}) returns {close()}; close().
// They report through `onState(state, info)`: "open" (proved to work), "reconnecting"
// (recovering by itself) or "down" (dropped: the client reconnects and resubscribes).

function defaultWsUrl() {
  const loc = globalThis.location;
  return loc ? `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}/ws/stream` : "/ws/stream";
}

// `url` asking for the native wire: `wire=native` replaces any `wire` it has (the server
// picks a connection's wire from this query parameter; without it, it sends the seed's shape).
export function nativeWireUrl(url) {
  const cut = url.indexOf("#");
  const [rest, hash] = cut < 0 ? [url, ""] : [url.slice(0, cut), url.slice(cut)];
  const [path, query = ""] = rest.split(/\?(.*)/s);
  const params = query.split("&").filter((param) => param && param.split("=")[0] !== "wire");
  return `${path}?${[...params, "wire=native"].join("&")}${hash}`;
}

export class WebSocketTransport {
  constructor({ WebSocket = globalThis.WebSocket, url = defaultWsUrl() } = {}) {
    Object.assign(this, { WebSocket, url: nativeWireUrl(url), name: "websocket", ws: null, closed: false });
    this.subs = new Map(); // run id -> subscription
    this.early = new Map(); // run id -> events that arrived before anyone subscribed
    this.announced = new Set(); // runs announced with {"type": "run"}
    this.starts = []; // pending `start` commands, answered in order
    this.onState = this.onRunAnnounced = this.onThreadActive = this.onCommandError = null;
  }

  connect() {
    return new Promise((resolve, reject) => {
      let open = false;
      const ws = (this.ws = new this.WebSocket(this.url));
      ws.onopen = () => {
        open = true;
        this.onState?.("open");
        resolve();
      };
      ws.onerror = () => open || reject(new Error("The WebSocket could not connect."));
      ws.onclose = (event) => {
        if (!open) return reject(new Error("The WebSocket closed before opening."));
        this.rejectStarts();
        // 4401: not logged in and guests are off; reconnecting would not help.
        if (!this.closed) this.onState?.("down", { code: event?.code, fatal: event?.code === 4401 });
      };
      ws.onmessage = (message) => this.receive(message.data);
    });
  }

  receive(data) {
    const event = parse(data);
    const { type, run_id: runId } = event ?? {};
    if (type === "run") {
      this.announced.add(runId);
      const { thread_id, message, branch = false } = event;
      return this.onRunAnnounced?.({ run_id: runId, thread_id, message, branch });
    }
    if (type === "thread") return this.onThreadActive?.({ thread_id: event.thread_id, title: event.title });
    const sub = runId ? this.subs.get(runId) : null;
    if (type === "error") {
      // Not a run event (those have a seq, and a failed run ends with `failed`): a command
      // failed, or following a run failed (e.g. its log expired).
      if (runId) sub?.onError(event.error);
      else if (event.command === "start" && this.starts.length) this.starts.shift().reject(new Error(event.error));
      else this.onCommandError?.(event);
      return;
    }
    if (!runId || typeof event.seq !== "number") return; // not JSON, paused, resumed, watching, ...
    if (sub) return sub.onEvent(event);
    // Nobody follows this run yet: the first event of an unannounced run answers our `start`.
    if (!this.early.has(runId)) {
      if (!this.announced.has(runId) && this.starts.length) {
        this.starts.shift().resolve({ run_id: runId, thread_id: event.thread_id });
      }
      this.early.set(runId, []);
    }
    this.early.get(runId).push(event);
  }

  subscribe(runId, after, handlers) {
    const sub = { ...handlers, close: () => this.subs.get(runId) === sub && this.subs.delete(runId) };
    this.subs.set(runId, sub);
    this.send({ command: "subscribe", run_id: runId, after });
    const early = this.early.get(runId) ?? [];
    this.early.delete(runId);
    for (const event of early) if (this.subs.get(runId) === sub) sub.onEvent(event);
    return sub;
  }

  // Resolves with {run_id, thread_id} when the new run's first event arrives.
  start(message, { threadId, ...options } = {}) {
    return new Promise((resolve, reject) => {
      this.starts.push({ resolve, reject });
      if (!this.send({ command: "start", message, ...options, ...(threadId ? { thread_id: threadId } : {}) })) {
        this.rejectStarts();
      }
    });
  }

  stop(runId) { return this.send(runId ? { command: "stop", run_id: runId } : { command: "stop" }); }
  pause() { return this.send({ command: "pause" }); }
  resume() { return this.send({ command: "resume" }); }
  watch(threadId) { return this.send({ command: "watch", thread_id: threadId }); }

  // Returns whether the command could be sent (the socket is open).
  send(command) {
    if (this.ws?.readyState !== (this.WebSocket.OPEN ?? 1)) return false;
    this.ws.send(JSON.stringify(command));
    return true;
  }

  rejectStarts() {
    for (const pending of this.starts.splice(0)) {
      pending.reject(Object.assign(new Error("The connection closed."), { connectionClosed: true }));
    }
  }

  close() {
    this.closed = true;
    this.rejectStarts();
    this.ws?.close();
  }
}

// What the two HTTP transports share: their open subscriptions, dropping one, closing all.
class HttpTransport {
  constructor(name, baseUrl = "") {
    Object.assign(this, { name, baseUrl, subs: new Set(), onState: null });
  }

  url(runId, endpoint, query) {
    return `${this.baseUrl}/api/runs/${encodeURIComponent(runId)}/${endpoint}?${query}`;
  }

  track(onClose) {
    const sub = { closed: false };
    sub.close = () => {
      if (sub.closed) return;
      sub.closed = true;
      this.subs.delete(sub);
      onClose?.();
    };
    this.subs.add(sub);
    return sub;
  }

  // The connection dropped: the client reconnects (or falls back) and resubscribes.
  drop(sub, info) {
    if (sub.closed) return;
    sub.close();
    this.onState?.("down", info);
  }

  close() {
    for (const sub of [...this.subs]) sub.close();
  }
}

export class SSETransport extends HttpTransport {
  constructor({ EventSource = globalThis.EventSource, baseUrl = "" } = {}) {
    super("sse", baseUrl);
    this.EventSource = EventSource;
  }

  connect() {
    return this.EventSource ? Promise.resolve() : Promise.reject(new Error("No EventSource."));
  }

  subscribe(runId, after, handlers) {
    const source = new this.EventSource(this.url(runId, "events", `after=${after}`));
    const sub = this.track(() => source.close());
    let opened = false;
    source.onopen = () => {
      if (sub.closed) return;
      opened = true;
      this.onState?.("open");
    };
    source.onmessage = (message) => {
      const event = parse(message.data);
      if (sub.closed || !event) return;
      opened = true;
      handlers.onEvent(event);
      if (TERMINAL.has(event.type)) sub.close(); // else EventSource would reconnect
    };
    source.onerror = () => {
      if (sub.closed) return;
      // Once it has worked, EventSource reconnects by itself (CONNECTING), sending
      // Last-Event-ID. If it never opened, SSE is not getting through here: give up, so the
      // client can fall back to polling instead of retrying forever.
      const gaveUp = source.readyState === (this.EventSource.CLOSED ?? 2);
      if (opened && !gaveUp) return this.onState?.("reconnecting");
      source.close();
      this.drop(sub, { opened });
    };
    return sub;
  }
}

export class PollTransport extends HttpTransport {
  constructor({ fetch = globalThis.fetch, setTimeout = globalThis.setTimeout, baseUrl = "", wait = 20, idleMs = 250 } = {}) {
    super("poll", baseUrl);
    // Wrapped so that browsers do not call them with the wrong `this`.
    this.fetch = fetch && ((...args) => fetch(...args));
    this.setTimeout = (...args) => setTimeout(...args);
    Object.assign(this, { wait, idleMs });
  }

  connect() {
    return this.fetch ? Promise.resolve() : Promise.reject(new Error("No fetch."));
  }

  subscribe(runId, after, handlers) {
    const sub = this.track();
    this.loop(runId, after, handlers, sub);
    return sub;
  }

  async loop(runId, after, handlers, sub) {
    while (!sub.closed) {
      let response, body;
      try {
        response = await this.fetch(this.url(runId, "poll", `after=${after}&wait=${this.wait}`), {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        });
        body = await response.json().catch(() => ({}));
      } catch (error) {
        return this.drop(sub, { error });
      }
      if (sub.closed) return;
      if (response.status === 404 || response.status === 410) {
        sub.close(); // no such run, or its log expired: nothing to retry
        return handlers.onError(body.error || `HTTP ${response.status}`, { fatal: true });
      }
      if (!response.ok) return this.drop(sub, { status: response.status });
      this.onState?.("open");
      const events = body.events ?? [];
      for (const event of events) {
        if (sub.closed) return;
        if (event === null || typeof event !== "object") continue;
        handlers.onEvent(event);
        if (event.seq > after) after = event.seq;
      }
      if (body.complete) {
        if (sub.closed) return;
        sub.close();
        return handlers.onComplete?.(body.status); // ended (e.g. past the log's retention)
      }
      if (!events.length) await new Promise((resolve) => this.setTimeout(resolve, this.idleMs));
    }
  }
}

const defaultFactories = {
  websocket: (o) => new WebSocketTransport({ WebSocket: o.WebSocket ?? globalThis.WebSocket, url: o.wsUrl }),
  sse: (o) => new SSETransport({ EventSource: o.EventSource ?? globalThis.EventSource, baseUrl: o.baseUrl }),
  poll: (o) => new PollTransport({ fetch: o.fetch, setTimeout: o.setTimeout, baseUrl: o.baseUrl }),
};

// Picks a transport, falls back, reconnects with backoff, and resumes every followed run.
export class ChatClient {
  constructor(options = {}) {
    const { fetch = globalThis.fetch, setTimeout = globalThis.setTimeout, clearTimeout = globalThis.clearTimeout } = options;
    this.fetch = (...args) => fetch(...args);
    this.setTimeout = (...args) => setTimeout(...args);
    this.clearTimeout = (...args) => clearTimeout(...args);
    this.names = options.prefer ? [options.prefer] : [...(options.transports ?? ["websocket", "sse", "poll"])];
    this.factories = { ...defaultFactories, ...options.factories };
    this.options = { baseUrl: "", ...options, fetch: this.fetch, setTimeout: this.setTimeout };
    this.baseUrl = this.options.baseUrl;
    this.csrfToken = options.csrfToken ?? "";
    const { onStatus, onRunAnnounced, onThreadActive, onError } = options;
    Object.assign(this, { onStatus, onRunAnnounced, onThreadActive, onError });
    this.backoff = { random: options.random ?? Math.random, ...options.backoff };
    this.followers = new Map(); // run id -> RunFollower
    this.threads = new Set(); // watched on the WebSocket, again after each reconnect
    this.worked = new Set(); // transports that proved to work here: retried, never abandoned
    Object.assign(this, { index: 0, attempt: 0, epoch: 0, state: "closed", closed: false, transportName: null });
    this.transport = this.attaching = this.connecting = this.timer = null;
  }

  // Connects unless connected; resolves with the name of the transport in use.
  connect() {
    this.closed = false;
    if (this.transport) return Promise.resolve(this.transportName);
    return (this.connecting ??= this.establish(false));
  }

  // Connects the current transport, falling back along the list while they fail to connect;
  // `retrying`: first wait the backoff delay (a transport that worked here is retried),
  // except before the first attempt when `now`.
  async establish(retrying, { now = false } = {}) {
    const epoch = this.epoch; // close() ends this attempt, even if connect() follows at once
    while (!this.closed && epoch === this.epoch) {
      if (retrying) {
        this.setStatus("reconnecting");
        if (now) now = false;
        else await this.sleep(backoffDelay(this.attempt++, this.backoff));
      }
      this.transportName = this.names[this.index];
      this.setStatus(retrying ? "reconnecting" : "connecting");
      if (await this.attach(this.transportName, epoch)) return this.transportName;
      if (epoch !== this.epoch) break;
      retrying = !this.fallBack();
    }
    return null;
  }

  // Creates and connects one transport; on success resumes every followed run on it.
  async attach(name, epoch) {
    const transport = this.factories[name]?.(this.options);
    if (!transport) return false;
    this.attaching = transport;
    transport.onState = (state, info) => {
      if (this.transport === transport || (this.attaching === transport && state === "open")) {
        this.transportState(state, info);
      }
    };
    transport.onRunAnnounced = (run) => this.onRunAnnounced?.(run);
    transport.onThreadActive = (thread) => this.onThreadActive?.(thread);
    transport.onCommandError = (event) => this.onError?.(event.error, event);
    try {
      await transport.connect();
    } catch {
      transport.close();
      return false;
    } finally {
      this.attaching = null;
    }
    if (this.closed || epoch !== this.epoch) return transport.close(), false;
    this.transport = transport;
    this.connecting = null;
    this.setStatus("open");
    for (const threadId of this.threads) transport.watch?.(threadId);
    for (const follower of this.active()) if (this.transport === transport) follower.follow(transport);
    return true;
  }

  transportState(state, info = {}) {
    if (state === "open") {
      this.worked.add(this.transportName);
      this.attempt = 0;
      this.setStatus("open");
    } else if (state === "reconnecting") this.setStatus("reconnecting");
    else if (state === "down") this.dropped(info);
  }

  // The transport in use dropped: fall back if it never worked, else reconnect after a delay
  // (at once when the server closed it to restart: another server resumes the runs).
  dropped(info) {
    this.transport?.close();
    this.transport = null;
    for (const follower of this.active()) follower.detach();
    if (info.fatal) return this.close();
    this.connecting = this.establish(!this.fallBack(), { now: info.code === SERVICE_RESTART });
  }

  // Moves on to the next transport unless this one worked here or is the last; returns whether it did.
  fallBack() {
    if (this.worked.has(this.transportName) || this.index >= this.names.length - 1) return false;
    this.setStatus("closed");
    this.index += 1;
    this.attempt = 0;
    return true;
  }

  sleep(ms) {
    return new Promise((resolve) => (this.timer = this.setTimeout(resolve, ms)));
  }

  setStatus(state) {
    if (state === this.state && this.transportName === this.reported) return;
    Object.assign(this, { state, reported: this.transportName });
    this.onStatus?.({ transport: this.transportName, state });
  }

  active() {
    for (const [runId, follower] of this.followers) if (follower.done) this.followers.delete(runId);
    return [...this.followers.values()];
  }

  // Follows a run after `handlers.after` (default 0); handlers: onEvent, onText, onEnd, onError.
  // Connects first if need be (unless close() was called).
  follow(runId, handlers = {}) {
    const existing = this.followers.get(runId);
    if (existing && !existing.done) return existing;
    const follower = new RunFollower(runId, handlers);
    this.followers.set(runId, follower);
    if (this.transport) follower.follow(this.transport);
    else if (!this.closed) this.connect();
    return follower;
  }

  // Sends a message (WebSocket `start` when it is open, else HTTP) and follows its reply.
  // The message carries a `client_id`, the same on every retry of it: a retry that reaches
  // the server after the first attempt did gets that attempt's reply, not a second one.
  async send(message, { threadId = null, options = {}, ...handlers } = {}) {
    const sending = { ...options, client_id: newClientId() };
    let run = null;
    if (this.transport && this.transportName === "websocket") {
      try {
        run = await this.transport.start(message, { threadId, ...sending });
      } catch (error) {
        if (!error.connectionClosed) throw error;
        // The socket closed before the answer (the server may be restarting): send the
        // same message over HTTP; if the socket's attempt got through, this attaches to it.
      }
    }
    if (!run) {
      const created = threadId ? null : (await this.request("/api/threads", {})).id;
      threadId ??= created;
      run = await this.request(`/api/threads/${encodeURIComponent(threadId)}/messages`, { message, ...sending });
      if (created && run.thread_id && run.thread_id !== created) this.discardThread(created);
    }
    const thread_id = run.thread_id ?? threadId;
    if (thread_id) this.threads.add(thread_id);
    return { run_id: run.run_id, thread_id, follower: this.follow(run.run_id, handlers) };
  }

  // Deletes a conversation this client created for nothing (best effort).
  discardThread(threadId) {
    this.request(`/api/threads/${encodeURIComponent(threadId)}`, undefined, { method: "DELETE" }).catch(() => {});
  }

  // Stops a run over HTTP, whatever the transport; its `stopped` event follows.
  stop(runId) {
    return this.request(`/api/runs/${encodeURIComponent(runId)}/stop`, {});
  }

  // Follows runs started in the thread elsewhere (WebSocket only): see `onRunAnnounced`.
  watch(threadId) {
    this.threads.add(threadId);
    if (this.transportName === "websocket") this.transport?.watch?.(threadId);
  }

  // Sends `body` (if any) as JSON with `method` (POST by default; GET and HEAD send no
  // body) and the CSRF token; resolves with the JSON answer (null for a 204, {} for another
  // answer without JSON), or throws an Error with `status` and `data`.
  // A 503 is retried (the request was not processed: safe whatever the method, even for a
  // new message); so are a network failure and a 502 (its worker died mid-request; nginx
  // does not send it to another) of a message with a `client_id`: a retry cannot start it
  // twice.
  async request(path, body, { method = "POST" } = {}) {
    const sendsBody = body !== undefined && method !== "GET" && method !== "HEAD";
    const headers = { Accept: "application/json", "X-CSRFToken": this.csrfToken };
    if (sendsBody) headers["Content-Type"] = "application/json";
    for (let attempt = 0; ; attempt++) {
      let response;
      try {
        response = await this.fetch(this.baseUrl + path, {
          method,
          credentials: "same-origin",
          headers,
          ...(sendsBody ? { body: JSON.stringify(body) } : {}),
        });
      } catch (error) {
        if (!body?.client_id || attempt >= UNAVAILABLE_RETRIES) throw error;
        await new Promise((resolve) => this.setTimeout(resolve, backoffDelay(attempt, this.backoff)));
        continue;
      }
      if (response.ok && response.status === 204) return null;
      const data = await response.json().catch(() => ({}));
      if (response.ok) return data;
      if (response.status === 502 && body?.client_id && attempt < UNAVAILABLE_RETRIES) {
        await new Promise((resolve) => this.setTimeout(resolve, backoffDelay(attempt, this.backoff)));
        continue;
      }
      if (response.status === 503 && attempt < UNAVAILABLE_RETRIES) {
        const seconds = Number(response.headers?.get?.("Retry-After"));
        const delay = seconds > 0 ? seconds * 1000 : backoffDelay(attempt, this.backoff);
        await new Promise((resolve) => this.setTimeout(resolve, delay));
        continue;
      }
      throw Object.assign(new Error(data?.error || `HTTP ${response.status}`), { status: response.status, data });
    }
  }

  // Closes the connection; followers keep their position, so connect() resumes them.
  close() {
    this.closed = true;
    this.epoch += 1;
    this.clearTimeout(this.timer);
    this.attaching?.close();
    this.transport?.close();
    this.transport = this.connecting = null;
    for (const follower of this.followers.values()) follower.detach();
    this.setStatus("closed");
  }
}
