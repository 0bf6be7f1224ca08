// Tests for static/chat/autoscroll.js: run with `node --test tests/js/` (or `npm test`).
// jsdom has no layout, so the list's geometry is a fake: a viewport of 200px over content
// whose height each test sets, with scrollTop clamped as a browser clamps it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { JSDOM } from "jsdom";
import { AutoScroll, SLACK_PX } from "../../static/chat/autoscroll.js";

const VIEWPORT = 200;

function setup({ content = 1000 } = {}) {
  const { window } = new JSDOM("<!doctype html><ol id=list></ol><button id=jump hidden>Jump to latest</button>");
  const { document } = window;
  const list = document.getElementById("list");
  const button = document.getElementById("jump");
  let height = content;
  let top = 0;
  Object.defineProperties(list, {
    clientHeight: { get: () => VIEWPORT },
    scrollHeight: { get: () => Math.max(height, VIEWPORT) },
    scrollTop: {
      get: () => top,
      set: (value) => { top = Math.max(0, Math.min(value, Math.max(height, VIEWPORT) - VIEWPORT)); },
    },
  });
  const autoscroll = new AutoScroll(list, { button, window });
  return {
    window, list, button, autoscroll,
    get top() { return top; },
    bottom: () => Math.max(height, VIEWPORT) - VIEWPORT,
    // New content below (as a streaming token adds it): taller, and a DOM change to observe.
    async grow(by = 100) {
      height += by;
      list.append(document.createElement("li"));
      await new Promise((resolve) => setTimeout(resolve, 0)); // MutationObserver's turn
    },
    async shrink(to) {
      height = to;
      top = Math.min(top, Math.max(height, VIEWPORT) - VIEWPORT);
      list.lastElementChild?.remove();
      await new Promise((resolve) => setTimeout(resolve, 0));
    },
    // The reader scrolls to `position` (the browser moves the view, then fires "scroll").
    scrollTo(position) {
      list.scrollTop = position;
      list.dispatchEvent(new window.Event("scroll"));
    },
    wheel(deltaY) {
      list.dispatchEvent(new window.WheelEvent("wheel", { deltaY }));
    },
  };
}

test("starts at the bottom, following, with the button hidden", () => {
  const page = setup({ content: 1000 });
  assert.equal(page.top, 800);
  assert.equal(page.autoscroll.following, true);
  assert.equal(page.button.hidden, true);
});

test("growing content is followed while the reader is at the bottom", async () => {
  const page = setup();
  await page.grow(150);
  assert.equal(page.top, page.bottom());
  assert.equal(page.top, 950);
  page.list.dispatchEvent(new page.window.Event("scroll")); // our own scroll's event
  await page.grow(50);
  assert.equal(page.top, 1000);
  assert.equal(page.button.hidden, true);
});

test("scrolling up stops following: new content never moves the view, and the button shows", async () => {
  const page = setup();
  page.scrollTo(300);
  assert.equal(page.autoscroll.following, false);
  assert.equal(page.button.hidden, false);
  for (let i = 0; i < 5; i += 1) await page.grow(100);
  assert.equal(page.top, 300);
  assert.equal(page.button.hidden, false);
});

test("scrolling down but not to the bottom keeps the view where the reader left it", async () => {
  const page = setup();
  page.scrollTo(300);
  page.scrollTo(500);
  await page.grow(100);
  assert.equal(page.top, 500);
  assert.equal(page.autoscroll.following, false);
});

test("Jump to latest goes to the bottom, follows again and hides", async () => {
  const page = setup();
  page.scrollTo(100);
  await page.grow(100);
  page.button.click();
  assert.equal(page.top, 900);
  assert.equal(page.autoscroll.following, true);
  assert.equal(page.button.hidden, true);
  page.list.dispatchEvent(new page.window.Event("scroll"));
  await page.grow(100);
  assert.equal(page.top, 1000);
});

test("scrolling back to the bottom (within the slack) follows again and hides the button", async () => {
  const page = setup();
  page.scrollTo(200);
  assert.equal(page.button.hidden, false);
  page.scrollTo(page.bottom() - SLACK_PX);
  assert.equal(page.autoscroll.following, true);
  assert.equal(page.button.hidden, true);
  await page.grow(100);
  assert.equal(page.top, page.bottom());
});

test("a scroll event of ours that lands after new content does not stop following", async () => {
  const page = setup();
  // Content grew and its scroll event came before the change was observed: the view is
  // above the bottom but has not moved up.
  page.list.append(page.window.document.createElement("li"));
  page.list.dispatchEvent(new page.window.Event("scroll"));
  assert.equal(page.autoscroll.following, true);
  await page.grow(100);
  assert.equal(page.top, page.bottom());
});

test("a wheel turned up stops following before the view moves; down, or with nothing to scroll, does not", async () => {
  const page = setup();
  page.wheel(40);
  assert.equal(page.autoscroll.following, true);
  page.wheel(-40);
  assert.equal(page.autoscroll.following, false);
  assert.equal(page.button.hidden, false);
  const top = page.top;
  await page.grow(100);
  assert.equal(page.top, top);

  const short = setup({ content: 150 });
  short.wheel(-40);
  assert.equal(short.autoscroll.following, true);
  assert.equal(short.button.hidden, true);
});

test("a finger pulling the list down, or an up key on the list, stops following too", () => {
  const page = setup();
  const touch = (type, clientY) => {
    const event = new page.window.Event(type);
    event.touches = [{ clientY }];
    page.list.dispatchEvent(event);
  };
  touch("touchstart", 300);
  touch("touchmove", 280); // pushing the list up: towards the bottom
  assert.equal(page.autoscroll.following, true);
  touch("touchmove", 340);
  assert.equal(page.autoscroll.following, false);

  const keys = setup();
  keys.list.dispatchEvent(new keys.window.KeyboardEvent("keydown", { key: "ArrowDown", bubbles: true }));
  assert.equal(keys.autoscroll.following, true);
  keys.list.dispatchEvent(new keys.window.KeyboardEvent("keydown", { key: "PageUp", bubbles: true }));
  assert.equal(keys.autoscroll.following, false);
  assert.equal(keys.button.hidden, false);
});

test("content that shrinks up to the reader makes them at the bottom again: following", async () => {
  const page = setup();
  page.scrollTo(0);
  await page.grow(100);
  assert.equal(page.autoscroll.following, false);
  await page.shrink(150); // nothing to scroll any more
  assert.equal(page.autoscroll.following, true);
  assert.equal(page.button.hidden, true);
});
