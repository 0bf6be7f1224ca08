// Tests for static/chat/announce.js: run with `node --test tests/js/` (or `npm test`).
import { test } from "node:test";
import assert from "node:assert/strict";
import { JSDOM } from "jsdom";
import { ReplyAnnouncer, STARTED, endedText } from "../../static/chat/announce.js";

function setup() {
  const { window } = new JSDOM("<!doctype html><ol><li id=reply></li></ol><p id=announcer></p>");
  const { document } = window;
  const region = document.getElementById("announcer");
  const said = [];
  new window.MutationObserver(() => said.push(region.textContent)).observe(region, { childList: true, characterData: true, subtree: true });
  const flush = () => new Promise((resolve) => setTimeout(resolve, 0));
  return { item: document.getElementById("reply"), region, said, flush, announcer: new ReplyAnnouncer(region) };
}

test("a reply's start and end are each said once, and it is busy in between", async () => {
  const { item, said, flush, announcer } = setup();
  announcer.started(item);
  await flush();
  assert.equal(item.getAttribute("aria-busy"), "true");
  announcer.ended(item, { type: "completed", metrics: {} });
  await flush();
  assert.equal(item.hasAttribute("aria-busy"), false);
  assert.deepEqual(said, [STARTED, "Reply finished"]);
  assert.equal(STARTED, "Assistant is replying…");
});

test("each way a reply ends has its own words, a failure with its reason", () => {
  assert.equal(endedText({ type: "completed" }), "Reply finished");
  assert.equal(endedText({ type: "stopped" }), "Reply stopped");
  assert.equal(endedText({ type: "interrupted" }), "Reply interrupted");
  assert.equal(endedText({ type: "failed", error: "The model is unavailable." }), "Reply failed: The model is unavailable.");
  assert.equal(endedText({ type: "failed" }), "Reply failed");
  assert.equal(endedText({ type: "something-new" }), "Reply ended");
});
