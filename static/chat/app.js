// The chat page: history rendered as markdown, replies streamed over WebSocket, SSE or
// polling (chosen automatically, or forced with ?transport=websocket|sse|poll), resumed
// after drops and reloads, live across tabs, with Stop, Pause/Resume and per-reply metrics;
// what the agent did on the way (its thinking, its tool calls) shows above a reply's text.
import { AgentSteps, stepsData } from "./agent_steps.js";
import { ReplyAnnouncer } from "./announce.js";
import { AutoScroll } from "./autoscroll.js";
import { ChatClient, newClientId } from "./client.js";
import { StreamingMarkdownView, attachCopyHandler, createRenderer } from "./markdown.js";
import { buildTools, otherVersion, refreshTools, setMessageData } from "./message_tools.js";
import { DOMPurify, hljs, marked } from "./vendor.js";
import { setupConversationHeader } from "./conversation_header.js";
import { setupSidebarSearch } from "./sidebar_search.js";

const root = document.getElementById("chat");
const list = document.getElementById("messages");
const form = document.getElementById("composer");
const input = document.getElementById("message");
const buttons = {
  send: document.getElementById("send"),
  stop: document.getElementById("stop"),
  pause: document.getElementById("pause"),
  resume: document.getElementById("resume"),
};
const statusLine = document.getElementById("status");
const csrfToken = document.querySelector("input[name=csrfmiddlewaretoken]").value;

const renderer = createRenderer({ marked, DOMPurify, hljs });
attachCopyHandler(list);
// The list follows a streaming reply while the reader is at its bottom (see autoscroll.js).
const autoscroll = new AutoScroll(list, { button: document.getElementById("jump-latest") });
const announcer = new ReplyAnnouncer(document.getElementById("announcer"));

const replies = new Map(); // run id -> { item, view, follower }
const sources = new WeakMap(); // message item -> its text as written (a reply's markdown)
let active = null; // the run the composer's Stop/Pause act on
let paused = false;
let status = { transport: "", state: "connecting" };

const client = new ChatClient({
  prefer: new URLSearchParams(location.search).get("transport") || undefined,
  csrfToken,
  onStatus: (next) => {
    status = next;
    showStatus();
  },
  onRunAnnounced: ({ run_id: runId, thread_id: threadId, message, branch }) => {
    if (threadId !== root.dataset.threadId || replies.has(runId)) return;
    if (branch) return reloadConversation(); // a new version of a message or reply
    if (message) addMessage("user", message, "completed");
    follow(runId, addMessage("assistant", ""));
    showThreadActive(threadId);
  },
  // A conversation of this user's had a message, in any tab or device (WebSocket only).
  onThreadActive: ({ thread_id: threadId, title }) => showThreadActive(threadId, "", title),
  onError: (message) => showStatus(message),
});

function showStatus(note = "") {
  const state = paused ? "paused" : status.state;
  const text = `${status.transport || "…"} · ${state}${note ? ` · ${note}` : ""}`;
  if (statusLine.textContent !== text) statusLine.textContent = text; // a live region: only changes
  statusLine.dataset.transport = status.transport || "";
  statusLine.dataset.state = state;
}

function setBusy() {
  const streaming = active !== null;
  buttons.send.disabled = streaming;
  buttons.stop.hidden = !streaming;
  buttons.pause.hidden = !streaming || paused;
  buttons.resume.hidden = !streaming || !paused;
  refreshTools(list, { busy: streaming });
}

// A message at the end of the list; `message` is its API JSON when known (else it is new).
function addMessage(role, text, status = "streaming", message = null) {
  const item = document.createElement("li");
  item.className = `message ${role} status-${status}`;
  item.dataset.role = role;
  item.dataset.status = status;
  const body = document.createElement("div");
  body.className = "body";
  body.textContent = text;
  item.append(body);
  if (role === "assistant") {
    const metrics = document.createElement("dl");
    metrics.className = "metrics";
    item.append(metrics);
  }
  list.append(item);
  sources.set(item, text);
  if (message) setMessageData(item, message);
  else {
    item.dataset.createdAt = new Date().toISOString();
    buildTools(item);
  }
  document.getElementById("empty-state").hidden = true;
  return item;
}

function formatMetrics(item, values, state) {
  const panel = item.querySelector(".metrics");
  if (!panel || !values) return;
  const rows = [
    ["Status", state],
    ["First token", values.ttft_seconds == null ? "–" : `${values.ttft_seconds.toFixed(2)} s`],
    ["Tokens", String(values.token_count ?? 0)],
    ["Duration", `${(values.duration_seconds ?? 0).toFixed(1)} s`],
    ["Tokens/s", values.tokens_per_second == null ? "–" : values.tokens_per_second.toFixed(1)],
  ];
  panel.replaceChildren(
    ...rows.flatMap(([name, value]) => {
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      dd.textContent = value;
      return [dt, dd];
    }),
  );
}

// Why a reply failed or was cut short, under its metrics (text, never markup).
function showError(item, text) {
  let line = item.querySelector(":scope > .reply-error");
  if (!line) {
    line = document.createElement("p");
    line.className = "reply-error";
    item.append(line);
  }
  line.textContent = text;
}

function setStatus(item, state) {
  item.classList.remove(`status-${item.dataset.status}`);
  item.dataset.status = state;
  item.classList.add(`status-${state}`);
}

// The handlers that stream a run into `item`, rendering at most once per animation frame.
function streamInto(item) {
  const body = item.querySelector(".body");
  const view = new StreamingMarkdownView(renderer, body);
  body.textContent = "";
  const steps = new AgentSteps(item, { renderer });
  steps.reset(); // the run's events from the start draw them again
  announcer.started(item);
  const reply = { item, view, follower: null, runId: null };
  let latest = "";
  let frame = 0;
  const paint = () => {
    frame = 0;
    view.update(latest);
  };
  const handlers = {
    onText: (text) => {
      latest = text;
      if (!frame) frame = requestAnimationFrame(paint);
    },
    onEvent: (event) => {
      steps.event(event);
      if (event.type === "metrics") formatMetrics(item, event.metrics, "streaming");
    },
    onEnd: (event) => {
      if (frame) cancelAnimationFrame(frame);
      view.finish(latest);
      steps.end();
      sources.set(item, latest); // what Copy copies: the reply's text, not its steps
      setStatus(item, event.type);
      formatMetrics(item, event.metrics, event.type);
      if (event.error) showError(item, event.error);
      announcer.ended(item, event);
      if (active === reply.runId) active = null;
      paused = false;
      setBusy();
      showStatus();
      syncConversation(); // the ids, times and versions the server gave the new messages
    },
    onError: (message) => showStatus(message),
  };
  return { reply, handlers };
}

function track(reply, runId, follower) {
  reply.runId = runId;
  reply.follower = follower;
  reply.item.dataset.runId = runId;
  replies.set(runId, reply);
  if (!follower.done) active = runId;
  setBusy();
}

function follow(runId, item) {
  const { reply, handlers } = streamInto(item);
  track(reply, runId, client.follow(runId, handlers));
}

async function send(text) {
  changed += 1;
  autoscroll.jump(); // to their own message, following the reply
  addMessage("user", text, "completed");
  const item = addMessage("assistant", "");
  const { reply, handlers } = streamInto(item);
  active = "starting";
  setBusy();
  try {
    const started = await client.send(text, { threadId: root.dataset.threadId || undefined, ...handlers });
    track(reply, started.run_id, started.follower);
    if (!root.dataset.threadId) {
      root.dataset.threadId = started.thread_id;
      history.replaceState(null, "", `/t/${started.thread_id}`);
      client.watch(started.thread_id);
    }
    showThreadActive(started.thread_id, text);
  } catch (error) {
    setStatus(item, "failed");
    showError(item, `Could not send: ${error.message}`);
    announcer.ended(item, { type: "failed", error: `could not send (${error.message})` });
    active = null;
    setBusy();
  }
}

// History from the server: render markdown, and resume any reply still streaming.
for (const item of list.querySelectorAll(".message")) {
  const body = item.querySelector(".body");
  sources.set(item, body.textContent);
  buildTools(item);
  if (item.dataset.status === "streaming" && item.dataset.runId) {
    follow(item.dataset.runId, item);
  } else if (item.dataset.role === "assistant") {
    const text = body.textContent; // read before the view takes over the element
    new StreamingMarkdownView(renderer, body).finish(text);
    new AgentSteps(item, { renderer }).render(stepsData(item));
  }
}
if (root.dataset.threadId) client.watch(root.dataset.threadId);
// A visitor gets their guest (and session cookie) before the WebSocket connects with it.
const identified = root.dataset.identity === "none"
  ? client.request("/api/session", {}).then(showIdentity)
  : Promise.resolve();
identified.then(() => client.connect()).catch((error) => showStatus(error.message));
setBusy();
showStatus();

// The header says who the visitor now is (their guest, or the account the session has).
function showIdentity(answer) {
  const name = document.getElementById("account-name");
  const user = answer?.user;
  if (!name || !user) return;
  name.textContent = user.guest ? "Guest" : user.username; // text, never markup
  name.hidden = false;
}

// The composer keeps a draft per conversation (a new chat's too) across reloads.
function draftKey() {
  return `draft:${root.dataset.threadId || "new"}`;
}

function remember(key, value) {
  try {
    if (value) localStorage.setItem(key, value);
    else localStorage.removeItem(key);
  } catch {
    // storage refused (private mode): no draft kept
  }
}

try {
  input.value = localStorage.getItem(draftKey()) ?? "";
} catch {
  // no storage: an empty composer
}
input.addEventListener("input", () => remember(draftKey(), input.value));

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value;
  if (!text.trim() || active) return;
  input.value = "";
  remember(draftKey(), "");
  send(text);
});

// Escape stops the reply that is streaming (as the Stop button does).
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !event.isComposing && replies.has(active)) {
    event.preventDefault();
    client.stop(active).catch((error) => showStatus(error.message));
  }
});

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

buttons.stop.addEventListener("click", () => {
  if (replies.has(active)) client.stop(active).catch((error) => showStatus(error.message));
});

buttons.pause.addEventListener("click", () => {
  const reply = replies.get(active);
  if (!reply) return;
  reply.follower.detach();
  paused = true;
  setBusy();
  showStatus();
});

buttons.resume.addEventListener("click", () => {
  const reply = replies.get(active);
  if (!reply) return;
  paused = false;
  reply.follower.follow(client.transport);
  setBusy();
  showStatus();
});

// The conversation as the server has it: versions and branches. A regenerated reply or an
// edited message is a new version of its turn; the page shows one branch and switches
// between versions with ‹ ›.
let changed = 0; // local changes so far: a conversation read before the last one is stale
let shown = 0; // the last conversation read that was applied

function messagesUrl(path = "messages") {
  return `/api/threads/${encodeURIComponent(root.dataset.threadId)}/${path}`;
}

// Replaces the list with `messages` (the API's), following the replies still streaming;
// the reader stays where they were (or, with `atEnd`, is taken to the end).
function renderConversation(messages, { atEnd = false } = {}) {
  for (const reply of replies.values()) reply.follower?.close();
  replies.clear();
  active = null;
  paused = false;
  const top = list.scrollTop;
  list.replaceChildren();
  for (const message of messages) {
    const item = addMessage(message.role, message.content, message.status, message);
    if (message.role !== "assistant") continue;
    formatMetrics(item, message.metrics, message.status);
    if (message.error) showError(item, message.error);
    if (message.status === "streaming") follow(message.id, item);
    else {
      new StreamingMarkdownView(renderer, item.querySelector(".body")).finish(message.content);
      new AgentSteps(item, { renderer }).render(message.steps);
    }
  }
  if (atEnd) autoscroll.jump();
  else list.scrollTop = top;
  setBusy();
  showStatus();
}

// Reads the conversation and applies it with `apply`, unless the page changed it meanwhile.
async function readConversation(apply, reading = client.request(messagesUrl(), undefined, { method: "GET" })) {
  const asked = ++shown;
  const before = changed;
  try {
    const answer = await reading;
    if (asked === shown && before === changed) apply(answer.messages);
  } catch (error) {
    showStatus(error.message);
  }
}

function reloadConversation() {
  if (root.dataset.threadId) return readConversation(renderConversation);
}

// After a reply ends: the messages shown get their ids, times and versions from the server
// in place (redrawn only if the server's conversation is not the one on the page).
function syncConversation() {
  if (!root.dataset.threadId) return;
  return readConversation((messages) => {
    const items = [...list.querySelectorAll(":scope > .message")];
    const same = items.length === messages.length && items.every((item, i) => item.dataset.role === messages[i].role
      && (!item.dataset.runId || item.dataset.runId === messages[i].id));
    if (!same) return renderConversation(messages);
    items.forEach((item, i) => setMessageData(item, messages[i]));
    setBusy();
  });
}

// Starts a run with `request` (a new version of a message or reply) and shows its branch.
async function branch(request) {
  changed += 1;
  active = "starting";
  setBusy();
  try {
    await request;
  } catch (error) {
    showStatus(error.message);
  }
  active = null;
  await readConversation((messages) => renderConversation(messages, { atEnd: true }));
  showThreadActive(root.dataset.threadId);
}

function regenerate(item) {
  const url = `/api/runs/${encodeURIComponent(item.dataset.runId)}/regenerate`;
  return branch(client.request(url, { client_id: newClientId() }));
}

function editAndResend(item, text) {
  return branch(client.request(messagesUrl(), { message: text, edit_of: item.dataset.messageId, client_id: newClientId() }));
}

function showVersion(item, step) {
  const id = otherVersion(item, step);
  if (!id) return;
  changed += 1;
  readConversation(renderConversation, client.request(messagesUrl("branch"), { message_id: id }));
}

// Edit: the message's text in a box (Enter sends it as a new version, Escape cancels).
function startEdit(item) {
  if (item.querySelector(":scope > .editor")) return;
  const body = item.querySelector(":scope > .body");
  const tools = item.querySelector(":scope > .tools");
  const editor = document.createElement("form");
  editor.className = "editor";
  const box = document.createElement("textarea");
  box.setAttribute("aria-label", "Edit message");
  box.rows = 3;
  box.value = sources.get(item) ?? body.textContent;
  const save = document.createElement("button");
  save.type = "submit";
  save.textContent = "Send";
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.textContent = "Cancel";
  editor.append(box, save, cancel);
  const close = () => {
    editor.remove();
    body.hidden = tools.hidden = false;
  };
  editor.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = box.value;
    if (!text.trim() || active) return;
    close();
    editAndResend(item, text);
  });
  cancel.addEventListener("click", () => {
    close();
    tools.querySelector("[data-action=edit]")?.focus();
  });
  box.addEventListener("keydown", (event) => {
    if (event.isComposing) return;
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      editor.requestSubmit();
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      cancel.click();
    }
  });
  body.hidden = tools.hidden = true;
  body.after(editor);
  box.focus();
  box.setSelectionRange(box.value.length, box.value.length);
}

async function copyMessage(item, control) {
  try {
    await navigator.clipboard.writeText(sources.get(item) ?? item.querySelector(".body").textContent);
    control.textContent = "Copied";
  } catch {
    control.textContent = "Copy failed";
  }
  setTimeout(() => { control.textContent = "Copy"; }, 1500);
}

list.addEventListener("click", (event) => {
  const control = event.target.closest?.("button[data-action]");
  const item = control?.closest(".message");
  if (!item || !list.contains(item)) return;
  const action = control.dataset.action;
  if (action === "copy") return copyMessage(item, control);
  if (active) return; // nothing else while a reply streams
  if (action === "regenerate") regenerate(item);
  else if (action === "edit") startEdit(item);
  else if (action === "previous-version") showVersion(item, -1);
  else if (action === "next-version") showVersion(item, 1);
});

// The sidebar: conversations most recently active first, renamed and deleted in place.
const threadList = document.getElementById("threads");

// The conversation just had a message: first in the sidebar (added if it is new, with its
// `title`, else the one the server gives it; until that answers, the message's opening words).
function showThreadActive(threadId, text = "", title = "") {
  let item = threadList.querySelector(`li[data-thread-id="${CSS.escape(threadId)}"]`);
  if (!item) {
    threadList.querySelector("li.muted")?.remove(); // "No conversations yet."
    item = threadItem(threadId, title || text.trim().split(/\s+/).join(" ").slice(0, 60) || "New conversation");
    if (!title) {
      threadRequest(threadId, "GET")
        .then((thread) => { if (thread?.title) setThreadTitle(item, thread.title); })
        .catch(() => {});
    }
  } else if (title) {
    setThreadTitle(item, title);
  }
  for (const other of threadList.querySelectorAll("li[aria-current]")) other.removeAttribute("aria-current");
  if (threadId === root.dataset.threadId) item.setAttribute("aria-current", "page");
  threadList.prepend(item);
}

function threadItem(threadId, title) {
  const item = document.createElement("li");
  item.dataset.threadId = threadId;
  const link = document.createElement("a");
  link.href = `/t/${encodeURIComponent(threadId)}`;
  const rename = document.createElement("button");
  rename.type = "button";
  rename.className = "rename";
  rename.textContent = "✎";
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "delete";
  remove.textContent = "×";
  item.append(link, " ", rename, " ", remove);
  setThreadTitle(item, title);
  return item;
}

function setThreadTitle(item, title) {
  item.querySelector("a").textContent = title; // text, never markup
  item.querySelector(".rename").setAttribute("aria-label", `Rename ${title}`);
  item.querySelector(".delete").setAttribute("aria-label", `Delete ${title}`);
}

// PATCH or DELETE /api/threads/<id> (ChatClient.request: CSRF token, errors, 503 retries).
function threadRequest(threadId, method, body) {
  return client.request(`/api/threads/${encodeURIComponent(threadId)}`, body, { method });
}

threadList.addEventListener("click", async (event) => {
  const button = event.target.closest("button");
  const item = button?.closest("li[data-thread-id]");
  if (!item) return;
  const threadId = item.dataset.threadId;
  const link = item.querySelector("a");
  try {
    if (button.classList.contains("rename")) {
      const title = prompt("Rename the conversation", link.textContent.trim());
      if (!title || !title.trim()) return;
      const thread = await threadRequest(threadId, "PATCH", { title: title.trim() });
      setThreadTitle(item, thread.title);
    } else if (button.classList.contains("delete")) {
      if (!confirm(`Delete “${link.textContent.trim()}”?`)) return;
      await threadRequest(threadId, "DELETE");
      item.remove();
      if (threadId === root.dataset.threadId) location.assign("/");
    }
  } catch (error) {
    showStatus(error.message);
  }
});

// Searching conversations (the sidebar shows the matches while the box has text), and the
// open conversation's header with its Export menu.
setupSidebarSearch({
  request: (path) => client.request(path, undefined, { method: "GET" }),
  currentThreadId: () => root.dataset.threadId,
});
setupConversationHeader({ root, threadList });
