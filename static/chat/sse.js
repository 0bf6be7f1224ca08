// Incremental Server-Sent Events parser: feed it decoded text chunks as they arrive from the
// network; it returns only complete events, so an event split across reads is never lost.
export class SSEParser {
  constructor() {
    this.buffer = "";
    this.pendingCR = false; // a read that ended in "\r" may be half of a "\r\n"
  }

  // Returns the events completed by `chunk`: [{id, event, data, retry}]
  push(chunk) {
    let text = this.pendingCR ? "\r" + chunk : chunk;
    this.pendingCR = text.endsWith("\r");
    if (this.pendingCR) text = text.slice(0, -1);
    this.buffer += text.replace(/\r\n?/g, "\n");
    const events = [];
    let end;
    while ((end = this.buffer.indexOf("\n\n")) !== -1) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const event = parseBlock(block);
      if (event) events.push(event);
    }
    return events;
  }
}

function parseBlock(block) {
  const event = { id: null, event: "message", data: "", retry: null };
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data.push(value);
    else if (field === "id") event.id = value;
    else if (field === "event") event.event = value;
    else if (field === "retry") event.retry = Number(value);
  }
  if (!data.length) return null;
  event.data = data.join("\n");
  return event;
}
