// Tests for static/chat/agent_steps.js: run with `node --test tests/js/`.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { JSDOM } from "jsdom";
import { marked } from "../../node_modules/marked/lib/marked.esm.js";
import DOMPurify from "../../node_modules/dompurify/dist/purify.es.mjs";
import { AgentSteps, formatArguments, stepsData } from "../../static/chat/agent_steps.js";
import { createRenderer } from "../../static/chat/markdown.js";

const { window } = new JSDOM("<!doctype html><html><body><ol id=list></ol></body></html>");
const { document } = window;
const list = document.getElementById("list");
const renderer = createRenderer({ marked, DOMPurify: DOMPurify(window) });

const XSS = '<img src=x onerror="alert(1)"><script>alert(2)</script>';

function reply() {
  const item = document.createElement("li");
  item.className = "message assistant";
  const body = document.createElement("div");
  body.className = "body";
  const metrics = document.createElement("dl");
  metrics.className = "metrics";
  item.append(body, metrics);
  list.append(item);
  return item;
}

// A run's events for `steps` (the stored form), split as the server streams them.
function eventsFor(steps) {
  const events = [];
  for (const step of steps) {
    if (step.type === "reasoning") {
      for (const piece of step.text.match(/\s*\S+|\s+$/g) ?? []) events.push({ type: "reasoning", text: piece });
    } else {
      events.push({ type: "tool_call", call_id: step.call_id, name: step.name });
      for (let i = 0; i < step.arguments.length; i += 5) {
        events.push({ type: "tool_arguments", call_id: step.call_id, text: step.arguments.slice(i, i + 5) });
      }
      if (step.output !== null) {
        events.push({ type: "tool_result", call_id: step.call_id, output: step.output, truncated: step.truncated, error: step.error });
      }
    }
  }
  return events.map((event, i) => ({ run_id: "r", seq: i + 2, ...event }));
}

const STEPS = [
  { type: "reasoning", text: "The user wants the **time**.\n\nI will call the clock." },
  { type: "tool", call_id: "c1", name: "current_time", arguments: '{"timezone": "UTC"}', output: "2026-01-01T12:00:00Z", error: false, truncated: false },
  { type: "reasoning", text: "Now some arithmetic." },
  { type: "tool", call_id: "c2", name: "calculate", arguments: '{"expression": "1/0"}', output: "division by zero", error: true, truncated: false },
  { type: "tool", call_id: "c3", name: "fetch", arguments: "not json {", output: "x".repeat(50), error: false, truncated: true },
];

const cards = (item) => [...item.querySelectorAll(":scope > .steps > details")];
const kinds = (item) => cards(item).map((d) => (d.classList.contains("tool") ? `tool:${d.querySelector(".tool-name").textContent}` : "thinking"));
const state = (card) => card.querySelector(".tool-state");
const sections = (card) => [...card.querySelectorAll(".tool-section")].map((s) => (s.hidden ? null : [
  s.querySelector(".tool-label").textContent, s.querySelector("pre > code").textContent,
]));

describe("live events", () => {
  test("build Thinking sections and tool cards in order, before the reply's text", () => {
    const item = reply();
    const steps = new AgentSteps(item, { renderer });
    for (const event of eventsFor(STEPS)) assert.equal(steps.event(event), true);
    assert.deepEqual(kinds(item), ["thinking", "tool:current_time", "thinking", "tool:calculate", "tool:fetch"]);
    assert.equal(item.firstElementChild.className, "steps");
    assert.equal(item.querySelector(":scope > .steps").nextElementSibling.className, "body");
    assert.deepEqual(steps.steps, STEPS);
  });

  test("a call's arguments are its pieces joined, pretty-printed once they are JSON", () => {
    const item = reply();
    const steps = new AgentSteps(item, { renderer });
    steps.event({ type: "tool_call", call_id: "c1", name: "current_time" });
    const [card] = cards(item);
    assert.equal(card.open, true);
    assert.deepEqual(sections(card), [null, null]); // nothing to show yet
    steps.event({ type: "tool_arguments", call_id: "c1", text: '{"time' });
    assert.deepEqual(sections(card)[0], ["Arguments", '{"time']); // as is while it is not JSON
    steps.event({ type: "tool_arguments", call_id: "c1", text: 'zone": "UTC"}' });
    assert.deepEqual(sections(card)[0], ["Arguments", '{\n  "timezone": "UTC"\n}']);
    assert.equal(steps.steps[0].arguments, '{"timezone": "UTC"}');
  });

  test("a spinner labelled Running until the result, then ✓ Done, output shown, card collapsed", () => {
    const item = reply();
    const steps = new AgentSteps(item, { renderer });
    steps.event({ type: "tool_call", call_id: "c1", name: "current_time" });
    const [card] = cards(item);
    assert.equal(card.dataset.state, "running");
    assert.equal(state(card).getAttribute("role"), "img");
    assert.equal(state(card).getAttribute("aria-label"), "Running");
    assert.ok(state(card).querySelector(".spinner"));
    steps.event({ type: "tool_result", call_id: "c1", output: "12:00", truncated: false, error: false });
    assert.equal(card.dataset.state, "done");
    assert.equal(state(card).textContent, "✓");
    assert.equal(state(card).getAttribute("aria-label"), "Done");
    assert.equal(state(card).querySelector(".spinner"), null);
    assert.deepEqual(sections(card)[1], ["Output", "12:00"]);
    assert.equal(card.open, false);
  });

  test("a failed call shows ✗ Failed; a truncated output says so", () => {
    const item = reply();
    const steps = new AgentSteps(item, { renderer });
    for (const event of eventsFor(STEPS.slice(3))) steps.event(event);
    const [failed, truncated] = cards(item);
    assert.equal(failed.dataset.state, "failed");
    assert.equal(state(failed).textContent, "✗");
    assert.equal(state(failed).getAttribute("aria-label"), "Failed");
    assert.deepEqual(sections(failed)[1], ["Output", "division by zero"]);
    assert.equal(truncated.dataset.state, "done");
    assert.deepEqual(sections(truncated), [["Arguments", "not json {"], ["Output (truncated)", "x".repeat(50)]]);
  });

  test("Thinking streams open, as markdown, and collapses when the text starts", () => {
    const item = reply();
    const steps = new AgentSteps(item, { renderer });
    steps.event({ type: "reasoning", text: "Some **bold" });
    const [thinking] = cards(item);
    assert.equal(thinking.querySelector("summary").textContent, "Thinking");
    assert.equal(thinking.open, true);
    steps.event({ type: "reasoning", text: "** idea." });
    assert.equal(thinking.querySelector(".thinking-text strong").textContent, "bold");
    steps.event({ type: "reasoning", text: "\n\nA second part." });
    assert.equal(thinking.querySelectorAll(".thinking-text p").length, 2);
    assert.equal(cards(item).length, 1); // one section for one run of reasoning
    assert.equal(steps.event({ type: "delta", text: "The answer" }), false);
    assert.equal(thinking.open, false);
    assert.equal(thinking.querySelector(".thinking-text").textContent.replace(/\s+/g, " ").trim(), "Some bold idea. A second part.");
  });

  test("Thinking collapses when a tool call starts, or when the reply ends", () => {
    const item = reply();
    const steps = new AgentSteps(item, { renderer });
    steps.event({ type: "reasoning", text: "First." });
    steps.event({ type: "tool_call", call_id: "c1", name: "t" });
    steps.event({ type: "reasoning", text: "Second." });
    const [first, tool, second] = cards(item);
    assert.equal(first.open, false);
    assert.equal(tool.open, true);
    assert.equal(second.open, true);
    steps.end();
    assert.equal(second.open, false);
    assert.equal(tool.open, false);
    assert.equal(tool.dataset.state, "unfinished"); // the reply ended before the call did
    assert.equal(state(tool).getAttribute("aria-label"), "Did not finish");
  });

  test("a section the reader opened stays open", () => {
    const item = reply();
    const steps = new AgentSteps(item, { renderer });
    steps.event({ type: "tool_call", call_id: "c1", name: "t" });
    const [card] = cards(item);
    card.open = false;
    card.querySelector("summary").click(); // the reader closes and reopens it
    card.open = true;
    steps.event({ type: "tool_result", call_id: "c1", output: "ok", truncated: false, error: false });
    steps.end();
    assert.equal(card.open, true);
  });

  test("HTML in names, arguments, outputs and reasoning stays inert text", () => {
    const item = reply();
    const steps = new AgentSteps(item, { renderer });
    steps.event({ type: "reasoning", text: `Thinking about ${XSS} and <a href="javascript:alert(3)">this</a>` });
    steps.event({ type: "tool_call", call_id: "c1", name: XSS });
    steps.event({ type: "tool_arguments", call_id: "c1", text: JSON.stringify({ html: XSS }) });
    steps.event({ type: "tool_result", call_id: "c1", output: XSS, truncated: false, error: false });
    steps.event({ type: "tool_call", call_id: "c2", name: "t" });
    steps.event({ type: "tool_arguments", call_id: "c2", text: XSS }); // not JSON: as is
    steps.end();
    const container = item.querySelector(".steps");
    assert.equal(container.querySelectorAll("img, script").length, 0);
    assert.equal(container.querySelectorAll("[onerror], [href^=javascript]").length, 0);
    const [, card, other] = cards(item);
    assert.equal(card.querySelector(".tool-name").textContent, XSS);
    assert.equal(sections(card)[1][1], XSS);
    assert.equal(JSON.parse(sections(card)[0][1]).html, XSS);
    assert.equal(sections(other)[0][1], XSS);
  });

  test("without a renderer, reasoning is plain text", () => {
    const item = reply();
    const steps = new AgentSteps(item);
    steps.event({ type: "reasoning", text: `**not bold** ${XSS}` });
    const text = item.querySelector(".thinking-text");
    assert.equal(text.textContent, `**not bold** ${XSS}`);
    assert.equal(text.children.length, 0);
  });

  test("a reply without steps gets no steps element", () => {
    const item = reply();
    const steps = new AgentSteps(item, { renderer });
    steps.event({ type: "started" });
    steps.event({ type: "delta", text: "Hi" });
    steps.end();
    steps.render([]);
    assert.equal(item.querySelector(".steps"), null);
  });
});

describe("render(steps)", () => {
  test("draws exactly what the live events drew", () => {
    const live = reply();
    const liveSteps = new AgentSteps(live, { renderer });
    for (const event of eventsFor(STEPS)) liveSteps.event(event);
    liveSteps.event({ type: "delta", text: "It is noon." });
    liveSteps.end();
    const stored = reply();
    const storedSteps = new AgentSteps(stored, { renderer });
    storedSteps.render(STEPS);
    assert.equal(stored.querySelector(".steps").outerHTML, live.querySelector(".steps").outerHTML);
    assert.deepEqual(storedSteps.steps, STEPS);
    assert.ok(cards(stored).every((card) => !card.open)); // all collapsed
  });

  test("mid-reply, unfinished calls keep their spinner unless the reply ended", () => {
    const steps = STEPS.slice(0, 2).map((step) => ({ ...step }));
    steps[1].output = null;
    const live = reply();
    const liveSteps = new AgentSteps(live, { renderer });
    for (const event of eventsFor(steps)) liveSteps.event(event);
    const stored = reply();
    new AgentSteps(stored, { renderer }).render(steps, { ended: false });
    assert.equal(stored.querySelector(".steps").outerHTML, live.querySelector(".steps").outerHTML);
    assert.equal(cards(stored)[1].dataset.state, "running");
    const ended = reply();
    new AgentSteps(ended, { renderer }).render(steps);
    assert.equal(cards(ended)[1].dataset.state, "unfinished");
  });

  test("replaces what was shown, and adopts a steps element already in the item", () => {
    const item = reply();
    new AgentSteps(item, { renderer }).render(STEPS);
    const again = new AgentSteps(item, { renderer });
    again.render(STEPS.slice(1, 2));
    assert.equal(item.querySelectorAll(".steps").length, 1);
    assert.deepEqual(kinds(item), ["tool:current_time"]);
    again.reset();
    assert.equal(item.querySelector(".steps"), null);
  });

  test("consecutive stored reasoning steps are one section, as they stream", () => {
    const item = reply();
    new AgentSteps(item, { renderer }).render([
      { type: "reasoning", text: "One." }, { type: "reasoning", text: "Two." },
    ]);
    assert.deepEqual(kinds(item), ["thinking"]);
    assert.equal(item.querySelectorAll(".thinking-text p").length, 2);
  });

  test("ignores what is not a step", () => {
    const item = reply();
    new AgentSteps(item, { renderer }).render([null, { type: "other" }, "x"]);
    new AgentSteps(item, { renderer }).render(null);
    assert.equal(item.querySelector(".steps"), null);
  });
});

test("formatArguments pretty-prints JSON and leaves anything else as it is", () => {
  assert.equal(formatArguments('{"a":[1,2]}'), '{\n  "a": [\n    1,\n    2\n  ]\n}');
  assert.equal(formatArguments('{"a":'), '{"a":');
  assert.equal(formatArguments(""), "");
});

test("stepsData reads the steps the server put on the item, or none", () => {
  const item = reply();
  assert.deepEqual(stepsData(item), []);
  item.dataset.steps = JSON.stringify(STEPS);
  assert.deepEqual(stepsData(item), STEPS);
  item.dataset.steps = "{not json";
  assert.deepEqual(stepsData(item), []);
  item.dataset.steps = '{"type": "reasoning"}';
  assert.deepEqual(stepsData(item), []);
});
