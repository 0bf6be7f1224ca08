// Tests for static/chat/message_tools.js: run with `node --test tests/js/`.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { JSDOM } from "jsdom";
import {
  buildTools,
  formatTime,
  messageData,
  otherVersion,
  refreshTools,
  setMessageData,
} from "../../static/chat/message_tools.js";

const { window } = new JSDOM("<!doctype html><html><body><ol id=list></ol></body></html>");
const { document } = window;
const list = document.getElementById("list");

function item(role, status = "completed") {
  const li = document.createElement("li");
  li.className = `message ${role}`;
  li.dataset.role = role;
  li.dataset.status = status;
  const body = document.createElement("div");
  body.className = "body";
  li.append(body);
  list.append(li);
  return li;
}

const names = (li) => [...li.querySelectorAll(".tools button")].map((b) => b.getAttribute("aria-label") ?? b.textContent);

describe("message tools", () => {
  test("a reply with versions gets its time, ‹ n/m ›, Copy and Regenerate", () => {
    list.replaceChildren();
    const li = item("assistant");
    setMessageData(li, {
      id: "b", role: "assistant", created_at: "2026-12-06T09:30:00+00:00", version: 2, version_ids: ["a", "b", "c"],
    });
    assert.equal(li.dataset.runId, "b");
    assert.deepEqual(names(li), ["Previous version", "Next version", "Copy message", "Regenerate"]);
    assert.equal(li.querySelector(".version").textContent, "2/3");
    assert.equal(li.querySelector("time").dateTime, "2026-12-06T09:30:00.000Z");
    assert.equal(otherVersion(li, -1), "a");
    assert.equal(otherVersion(li, 1), "c");
    assert.deepEqual(messageData(li), {
      id: "b", role: "assistant", status: "completed", created_at: "2026-12-06T09:30:00+00:00", version: 2,
      version_ids: ["a", "b", "c"],
    });
  });

  test("a message with one version has no ‹ ›; a user's message can be edited, not regenerated", () => {
    list.replaceChildren();
    const li = item("user");
    setMessageData(li, { id: "u", role: "user", created_at: "2026-12-06T09:30:00Z", version: 1, version_ids: ["u"] });
    assert.deepEqual(names(li), ["Copy message", "Edit"]);
    assert.equal(otherVersion(li, 1), null);
    assert.equal(otherVersion(li, -1), null);
  });

  test("a message not yet saved can be copied only", () => {
    list.replaceChildren();
    const li = item("user");
    buildTools(li);
    assert.deepEqual(names(li), ["Copy message"]);
    assert.equal(li.querySelector("time"), null);
  });

  test("Regenerate shows on the last reply once it ended; nothing that starts a run while busy", () => {
    list.replaceChildren();
    const first = item("assistant");
    setMessageData(first, { id: "r1", role: "assistant", created_at: "2026-12-06T09:30:00Z", version: 1, version_ids: ["r1", "r2"] });
    const question = item("user");
    setMessageData(question, { id: "q", role: "user", created_at: "2026-12-06T09:31:00Z" });
    const last = item("assistant", "streaming");
    setMessageData(last, { id: "r3", role: "assistant", created_at: "2026-12-06T09:31:00Z" });
    const regenerate = (li) => li.querySelector("[data-action=regenerate]");

    refreshTools(list, { busy: true });
    assert.equal(regenerate(first).hidden, true);
    assert.equal(regenerate(last).hidden, true); // still streaming
    assert.equal(question.querySelector("[data-action=edit]").disabled, true);
    assert.equal(first.querySelector("[data-action=next-version]").disabled, true);

    last.dataset.status = "completed";
    refreshTools(list, { busy: false });
    assert.equal(regenerate(last).hidden, false);
    assert.equal(regenerate(last).disabled, false);
    assert.equal(question.querySelector("[data-action=edit]").disabled, false);
    assert.equal(first.querySelector("[data-action=previous-version]").disabled, true); // the first version
    assert.equal(first.querySelector("[data-action=next-version]").disabled, false);
  });

  test("times: today's as a time, this year's with the day, older with the year", () => {
    const now = new Date(2026, 11, 6, 15, 0);
    assert.equal(formatTime(new Date(2026, 11, 6, 9, 5), now, "en-GB"), "9:05");
    assert.equal(formatTime(new Date(2026, 11, 6, 14, 5), now, "en-US"), "2:05 PM");
    assert.equal(formatTime(new Date(2026, 2, 3, 9, 5), now, "en-GB"), "3 Mar, 9:05");
    assert.equal(formatTime(new Date(2025, 2, 3, 9, 5), now, "en-GB"), "3 Mar 2025, 9:05");
  });
});
