// A message's row of tools: when it was sent, its versions (a regenerated reply, an edited
// message: "‹ 2/3 ›"), Copy, and Edit (the user's messages) or Regenerate (the last reply).
// The buttons carry `data-action`; the page handles their clicks in one place.
//
//   setMessageData(item, message)   // from the API's message JSON (or the page's markup)
//   refreshTools(list, { busy })    // Regenerate on the last reply only; none while busy

// A message's own data, kept on its list item (`data-*`), as the API names it.
export function messageData(item) {
  const ids = (item.dataset.versionIds || "").split(",").filter(Boolean);
  return {
    id: item.dataset.messageId || "",
    role: item.dataset.role,
    status: item.dataset.status,
    created_at: item.dataset.createdAt || "",
    version: Number(item.dataset.version) || 1,
    version_ids: ids.length ? ids : item.dataset.messageId ? [item.dataset.messageId] : [],
  };
}

export function setMessageData(item, message, { now = () => new Date() } = {}) {
  item.dataset.messageId = message.id;
  if (message.role === "assistant") item.dataset.runId = message.id;
  item.dataset.createdAt = message.created_at;
  item.dataset.version = String(message.version ?? 1);
  item.dataset.versionIds = (message.version_ids ?? [message.id]).join(",");
  buildTools(item, { now });
}

// "14:05" (or "2:05 PM") today, "3 Dec, 14:05" this year, "3 Dec 2025, 14:05" before: in
// the reader's locale and time zone.
export function formatTime(date, now = new Date(), locale = undefined) {
  const time = date.toLocaleTimeString(locale, { hour: "numeric", minute: "2-digit" });
  if (date.toDateString() === now.toDateString()) return time;
  const day = { day: "numeric", month: "short" };
  if (date.getFullYear() !== now.getFullYear()) day.year = "numeric";
  return `${date.toLocaleDateString(locale, day)}, ${time}`;
}

function button(doc, action, label, text = label) {
  const element = doc.createElement("button");
  element.type = "button";
  element.dataset.action = action;
  element.textContent = text;
  if (text !== label) element.setAttribute("aria-label", label);
  return element;
}

// (Re)builds the item's tools from its data.
export function buildTools(item, { now = () => new Date() } = {}) {
  const message = messageData(item);
  const doc = item.ownerDocument;
  let tools = item.querySelector(":scope > .tools");
  if (!tools) {
    tools = doc.createElement("div");
    tools.className = "tools";
    item.querySelector(":scope > .body").after(tools);
  }
  const parts = [];
  if (message.created_at) {
    const sent = new Date(message.created_at);
    if (!Number.isNaN(sent.getTime())) {
      const time = doc.createElement("time");
      time.dateTime = sent.toISOString();
      time.title = sent.toLocaleString();
      time.textContent = formatTime(sent, now());
      parts.push(time);
    }
  }
  const count = message.version_ids.length;
  if (count > 1) {
    const nav = doc.createElement("span");
    nav.className = "versions";
    const previous = button(doc, "previous-version", "Previous version", "‹");
    const next = button(doc, "next-version", "Next version", "›");
    previous.disabled = message.version <= 1;
    next.disabled = message.version >= count;
    const label = doc.createElement("span");
    label.className = "version";
    label.textContent = `${message.version}/${count}`;
    label.title = `Version ${message.version} of ${count}`;
    nav.append(previous, label, next);
    parts.push(nav);
  }
  const copy = button(doc, "copy", "Copy message", "Copy");
  copy.classList.add("copy-message");
  parts.push(copy);
  if (message.id && message.role === "user") parts.push(button(doc, "edit", "Edit"));
  if (message.id && message.role === "assistant") parts.push(button(doc, "regenerate", "Regenerate"));
  tools.replaceChildren(...parts);
  return tools;
}

// Regenerate only on the conversation's last reply once it has ended; nothing that starts
// a run (Regenerate, Edit) or changes the branch shown while a reply is streaming.
export function refreshTools(list, { busy = false } = {}) {
  const items = [...list.querySelectorAll(":scope > .message")];
  const last = items.at(-1);
  for (const item of items) {
    const regenerate = item.querySelector(":scope > .tools [data-action=regenerate]");
    if (regenerate) regenerate.hidden = item !== last || item.dataset.status === "streaming";
    for (const control of item.querySelectorAll(
      ":scope > .tools [data-action=regenerate], :scope > .tools [data-action=edit]",
    )) {
      control.disabled = busy;
    }
    const data = messageData(item);
    const previous = item.querySelector(":scope > .tools [data-action=previous-version]");
    const next = item.querySelector(":scope > .tools [data-action=next-version]");
    if (previous) previous.disabled = busy || data.version <= 1;
    if (next) next.disabled = busy || data.version >= data.version_ids.length;
  }
}

// The id of the version `step` (-1 or +1) away from the one shown, or null.
export function otherVersion(item, step) {
  const { version, version_ids: ids } = messageData(item);
  return ids[version - 1 + step] ?? null;
}
