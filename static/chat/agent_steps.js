// What the agent did on the way to a reply, shown above its text: its reasoning summary in
// collapsible "Thinking" sections and each tool call as a compact card (name, a spinner
// until its result, then ✓ or ✗; arguments and output inside). Built live from the run's
// events (docs/api.md, "Events"), or drawn from a finished reply's stored `steps`
// ("Threads"); both go through the same code, so a reloaded reply looks exactly as it did.
//
//   const steps = new AgentSteps(item, { renderer }); // item: the reply's li.message
//   steps.event(event);          // any run event (the first `delta` collapses Thinking)
//   steps.end();                 // the reply ended: everything still open collapses
//   steps.render(message.steps); // a finished reply's stored steps
//
// Model and tool output is untrusted: names, arguments and outputs are set as text only;
// reasoning goes through the page's sanitizing markdown renderer (or is text without one).
// A section the reader opened or closed themselves is never collapsed or opened for them.

const STATES = {
  running: { mark: "", label: "Running" },
  done: { mark: "✓", label: "Done" },
  failed: { mark: "✗", label: "Failed" },
  unfinished: { mark: "–", label: "Did not finish" },
};

// A call's arguments pretty-printed when they are JSON (all of them have arrived), else as is.
export function formatArguments(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

// The text of a stored reasoning step that follows another one: a new summary part starts
// with a blank line, as it does live.
function continued(text) {
  return /^\s*\n\s*\n/.test(text) ? text : `\n\n${text}`;
}

export class AgentSteps {
  #item;
  #doc;
  #renderer;
  #steps = []; // the stored form (docs/api.md, "Threads"), as far as it has come
  #parts = []; // for each step: { details, touched, ... } (its element, and what updates it)
  #calls = new Map(); // call id -> its step's index
  #thinking = null; // the reasoning part that is streaming, if one is

  constructor(item, { renderer = null } = {}) {
    this.#item = item;
    this.#doc = item.ownerDocument;
    this.#renderer = renderer;
  }

  /** The steps so far, in their stored form. */
  get steps() {
    return this.#steps.map((step) => ({ ...step }));
  }

  /** The reply's steps element (made with the first step), or null. */
  get container() {
    return this.#item.querySelector(":scope > .steps");
  }

  /** Applies a run event; returns whether it was a step's (reasoning or tool). */
  event(event) {
    switch (event?.type) {
      case "reasoning":
        this.#reason(String(event.text ?? ""));
        return true;
      case "tool_call":
        this.#call(event.call_id, event.name);
        return true;
      case "tool_arguments":
        this.#arguments(event.call_id, String(event.text ?? ""));
        return true;
      case "tool_result":
        this.#result(event.call_id, event);
        return true;
      case "delta":
        this.#settleThinking(); // the reply's text has started
        return false;
      default:
        return false;
    }
  }

  /** The reply ended: Thinking and unfinished calls collapse; a call with no result says so. */
  end() {
    this.#settleThinking();
    this.#steps.forEach((step, i) => {
      if (step.type === "tool" && step.output === null) this.#setState(this.#parts[i], "unfinished");
      this.#collapse(this.#parts[i]);
    });
  }

  /** Draws stored steps (a finished reply's, unless `ended` is false) in place of any shown. */
  render(steps, { ended = true } = {}) {
    this.reset();
    for (const step of Array.isArray(steps) ? steps : []) {
      if (step?.type === "reasoning") {
        const text = String(step.text ?? "");
        this.#reason(this.#steps.at(-1)?.type === "reasoning" ? continued(text) : text);
      } else if (step?.type === "tool") {
        const callId = String(step.call_id ?? `call-${this.#steps.length}`);
        this.#call(callId, step.name);
        this.#arguments(callId, String(step.arguments ?? ""));
        if (step.output != null) this.#result(callId, step);
      }
    }
    if (ended) this.end();
  }

  /** Removes every step (a run replayed from its start builds them again). */
  reset() {
    this.container?.remove();
    this.#steps = [];
    this.#parts = [];
    this.#calls.clear();
    this.#thinking = null;
  }

  #add(step, part) {
    let container = this.container;
    if (!container) {
      container = this.#el("div", "steps");
      const body = this.#item.querySelector(":scope > .body");
      if (body) body.before(container);
      else this.#item.prepend(container);
    }
    // Opening or closing it is the reader's choice from then on (Enter and Space click too).
    part.details.querySelector("summary").addEventListener("click", () => {
      part.touched = true;
    });
    container.append(part.details);
    this.#steps.push(step);
    this.#parts.push(part);
    return part;
  }

  #reason(text) {
    const last = this.#steps.length - 1;
    if (this.#steps[last]?.type === "reasoning") {
      this.#steps[last].text += text;
    } else {
      this.#settleThinking();
      const details = this.#el("details", "thinking");
      details.open = true;
      const summary = this.#el("summary", "", "Thinking");
      const content = this.#el("div", "thinking-text");
      details.append(summary, content);
      const view = this.#renderer?.createStreamView(content) ?? null;
      this.#add({ type: "reasoning", text }, { details, content, view, touched: false });
    }
    const part = this.#parts.at(-1);
    this.#thinking = part;
    this.#show(part, this.#steps.at(-1).text, false);
  }

  // Markdown through the sanitizing renderer (a growing text while it streams), else text.
  #show(part, text, final) {
    if (!part.view) part.content.textContent = text;
    else if (final) part.view.finish(text);
    else part.view.update(text);
  }

  #settleThinking() {
    const part = this.#thinking;
    if (!part) return;
    this.#thinking = null;
    this.#show(part, this.#steps[this.#parts.indexOf(part)].text, true);
    this.#collapse(part);
  }

  #call(callId, name) {
    this.#settleThinking();
    const id = String(callId ?? "");
    if (this.#calls.has(id)) return this.#calls.get(id);
    const details = this.#el("details", "tool");
    details.open = true; // its arguments show as they arrive
    details.dataset.callId = id;
    const summary = this.#el("summary");
    const title = this.#el("span", "tool-name", String(name ?? ""));
    const state = this.#el("span", "tool-state");
    state.setAttribute("role", "img");
    summary.append(title, " ", state);
    const args = this.#section("Arguments");
    const output = this.#section("Output");
    details.append(summary, args.section, output.section);
    const step = {
      type: "tool", call_id: id, name: String(name ?? ""), arguments: "", output: null, error: false, truncated: false,
    };
    this.#add(step, { details, state, args, output, touched: false });
    this.#setState(this.#parts.at(-1), "running");
    this.#calls.set(id, this.#steps.length - 1);
    return this.#steps.length - 1;
  }

  // A labelled block of text: <div><span>label</span><pre><code>text</code></pre></div>.
  #section(label) {
    const section = this.#el("div", "tool-section");
    section.hidden = true;
    const name = this.#el("span", "tool-label", label);
    const pre = this.#el("pre");
    const code = this.#el("code");
    code.tabIndex = 0; // a long line scrolls sideways: keyboards can scroll it too
    pre.append(code);
    section.append(name, pre);
    return { section, name, code };
  }

  #index(callId) {
    const id = String(callId ?? "");
    return this.#calls.has(id) ? this.#calls.get(id) : this.#call(id, "");
  }

  #arguments(callId, text) {
    const i = this.#index(callId);
    const step = this.#steps[i];
    step.arguments += text;
    const { args } = this.#parts[i];
    args.code.textContent = formatArguments(step.arguments);
    args.section.hidden = step.arguments === "";
  }

  #result(callId, { output, truncated, error }) {
    const i = this.#index(callId);
    const step = this.#steps[i];
    const part = this.#parts[i];
    Object.assign(step, { output: String(output ?? ""), truncated: Boolean(truncated), error: Boolean(error) });
    part.output.code.textContent = step.output;
    part.output.name.textContent = step.truncated ? "Output (truncated)" : "Output";
    part.output.section.hidden = false;
    this.#setState(part, step.error ? "failed" : "done");
    this.#collapse(part);
  }

  #setState(part, name) {
    const { mark, label } = STATES[name];
    part.details.dataset.state = name;
    part.state.setAttribute("aria-label", label);
    part.state.title = label;
    if (name === "running") part.state.replaceChildren(this.#el("span", "spinner"));
    else part.state.textContent = mark;
  }

  #collapse(part) {
    if (part && !part.touched) part.details.open = false;
  }

  #el(tag, className = "", text = "") {
    const element = this.#doc.createElement(tag);
    if (className) element.className = className;
    if (text) element.textContent = text;
    return element;
  }
}

// The stored steps the server put on a reply's list item (`data-steps`, JSON), or [].
export function stepsData(item) {
  try {
    const steps = JSON.parse(item.dataset.steps || "[]");
    return Array.isArray(steps) ? steps : [];
  } catch {
    return [];
  }
}
