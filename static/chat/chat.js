// The chat page: sends a message and streams the reply into the conversation.
import { SSEParser } from "./sse.js";

const root = document.getElementById("chat");
const list = document.getElementById("messages");
const form = document.getElementById("composer");
const input = document.getElementById("message");
const sendButton = document.getElementById("send");
const stopButton = document.getElementById("stop");
const statusLine = document.getElementById("status");
const csrfToken = document.querySelector("input[name=csrfmiddlewaretoken]").value;

let busy = false;
let currentRun = null;

function addMessage(role, text) {
  const item = document.createElement("li");
  item.className = `message ${role}`;
  const body = document.createElement("div");
  body.className = "body";
  body.textContent = text;
  item.append(body);
  if (role === "assistant") {
    const meta = document.createElement("div");
    meta.className = "meta";
    item.append(meta);
  }
  list.append(item);
  item.scrollIntoView({ block: "end" });
  return item;
}

function setBusy(busy) {
  sendButton.disabled = busy;
  stopButton.hidden = !busy;
}

async function send(text) {
  addMessage("user", text);
  const reply = addMessage("assistant", "");
  const body = reply.querySelector(".body");
  const meta = reply.querySelector(".meta");
  reply.classList.add("status-streaming");
  let received = "";
  let pending = false;
  const render = () => {
    pending = false;
    body.textContent = received;
  };

  busy = true;
  setBusy(true);
  statusLine.textContent = "Streaming…";
  try {
    const response = await fetch(root.dataset.streamUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken },
      body: JSON.stringify({ message: text, thread_id: root.dataset.threadId || null }),
    });
    if (!response.ok) {
      const problem = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
      throw new Error(problem.error || `HTTP ${response.status}`);
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SSEParser();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      for (const event of parser.push(value)) {
        const data = JSON.parse(event.data);
        if (data.type === "started") {
          if (!root.dataset.threadId) {
            root.dataset.threadId = data.thread_id;
            history.replaceState(null, "", `/t/${data.thread_id}`);
          }
          reply.dataset.messageId = data.run_id;
          currentRun = data.run_id;
        } else if (data.type === "token") {
          received += data.token;
          if (!pending) {
            pending = true;
            requestAnimationFrame(render);
          }
        } else if (data.type === "completed" || data.type === "stopped") {
          const m = data.metrics;
          meta.textContent = `${data.type} · ${m.token_count} tokens · ${(m.tokens_per_second || 0).toFixed(1)} tok/s`;
          reply.classList.replace("status-streaming", `status-${data.type}`);
        } else if (data.type === "error") {
          meta.textContent = `failed · ${data.error}`;
          reply.classList.replace("status-streaming", "status-failed");
        }
      }
    }
    statusLine.textContent = "Ready";
  } catch (error) {
    meta.textContent = `failed · ${error.message}`;
    statusLine.textContent = `Error: ${error.message}`;
  } finally {
    render();
    busy = false;
    currentRun = null;
    setBusy(false);
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value;
  if (!text.trim() || busy) return;
  input.value = "";
  send(text);
});

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    form.requestSubmit();
  }
});

stopButton.addEventListener("click", () => {
  if (!currentRun) return;
  fetch(`/api/runs/${currentRun}/stop`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken },
  });
});
