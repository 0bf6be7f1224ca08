// static/chat/sidebar_search.js and conversation_header.js on a jsdom page, with a fake
// clock and a fake server.
import { test } from "node:test";
import assert from "node:assert/strict";
import { JSDOM } from "jsdom";
import { SEARCH_DELAY_MS, SidebarSearch } from "../../static/chat/sidebar_search.js";
import { ConversationHeader } from "../../static/chat/conversation_header.js";

const flush = async () => {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
};

function page() {
  const { window } = new JSDOM(`<!doctype html><body>
    <input type="search" id="thread-search">
    <p id="search-status" hidden></p>
    <ul id="threads"><li data-thread-id="t1"><a href="/t/t1">Normal list</a></li></ul>
    <ul id="search-results" hidden></ul>
    <button id="search-more" hidden>Load more</button>
    <main id="chat" data-thread-id="">
      <header id="conversation-header" hidden>
        <h1 id="conversation-title"></h1>
        <button id="export" aria-expanded="false">Export</button>
        <ul id="export-menu" hidden>
          <li><a data-format="markdown">Markdown</a></li><li><a data-format="json">JSON</a></li>
        </ul>
      </header>
    </main></body>`);
  return window;
}

function fakeTimers() {
  const timers = {
    pending: new Map(),
    next: 1,
    delays: [],
    setTimeout(fn, ms) {
      timers.delays.push(ms);
      timers.pending.set(timers.next, fn);
      return timers.next++;
    },
    clearTimeout(id) {
      timers.pending.delete(id);
    },
    async fire() {
      const fns = [...timers.pending.values()];
      timers.pending.clear();
      for (const fn of fns) fn();
      await flush();
    },
  };
  return timers;
}

// A server answering each request when told to: `answer(i, body)`.
function fakeServer() {
  const server = {
    paths: [],
    waiting: [],
    request(path) {
      server.paths.push(path);
      return new Promise((resolve, reject) => server.waiting.push({ resolve, reject }));
    },
    async answer(i, body) {
      server.waiting[i].resolve(body);
      await flush();
    },
    async fail(i, message) {
      server.waiting[i].reject(new Error(message));
      await flush();
    },
  };
  return server;
}

function setup(current = "") {
  const window = page();
  const doc = window.document;
  const timers = fakeTimers();
  const server = fakeServer();
  const find = (id) => doc.getElementById(id);
  const search = new SidebarSearch({
    input: find("thread-search"),
    threads: find("threads"),
    results: find("search-results"),
    status: find("search-status"),
    more: find("search-more"),
    request: server.request,
    currentThreadId: () => current,
    timers,
  });
  const type = (text) => {
    find("thread-search").value = text;
    find("thread-search").dispatchEvent(new window.Event("input"));
  };
  const shown = () => [...find("search-results").querySelectorAll("a")].map((a) => a.textContent);
  return { window, doc, find, timers, server, search, type, shown };
}

const thread = (id, title) => ({ id, title });

test("typing searches once typing pauses, and only for the last text", async () => {
  const { timers, server, type, find, shown } = setup();
  type("p");
  type("py");
  type("pyth ");
  assert.deepEqual(server.paths, []); // nothing until the pause
  assert.deepEqual(timers.delays, [SEARCH_DELAY_MS, SEARCH_DELAY_MS, SEARCH_DELAY_MS]);
  await timers.fire();
  assert.deepEqual(server.paths, ["/api/threads?q=pyth&page=1"]);
  await server.answer(0, { threads: [thread("a", "Python packaging")], next_page: null });
  assert.deepEqual(shown(), ["Python packaging"]);
  assert.equal(find("threads").hidden, true);
  assert.equal(find("search-results").hidden, false);
  assert.equal(find("search-status").textContent, "1 conversation matches");
  assert.equal(find("search-more").hidden, true);
});

test("a late answer to an earlier search is not shown over the latest", async () => {
  const { timers, server, type, shown } = setup();
  type("ol");
  await timers.fire();
  type("old & new");
  await timers.fire();
  assert.deepEqual(server.paths, ["/api/threads?q=ol&page=1", "/api/threads?q=old%20%26%20new&page=1"]);
  await server.answer(1, { threads: [thread("b", "New")], next_page: null });
  await server.answer(0, { threads: [thread("a", "Old")], next_page: null });
  assert.deepEqual(shown(), ["New"]);
});

test("no match says so; titles are text, never markup", async () => {
  const { timers, server, type, find, shown } = setup();
  type("zebra");
  await timers.fire();
  await server.answer(0, { threads: [], next_page: null });
  assert.deepEqual(shown(), []);
  assert.equal(find("search-status").textContent, "No conversations match.");
  assert.equal(find("search-status").hidden, false);

  type("img");
  await timers.fire();
  await server.answer(1, { threads: [thread("x", "<img src=x onerror=alert(1)>")], next_page: null });
  assert.deepEqual(shown(), ["<img src=x onerror=alert(1)>"]);
  assert.equal(find("search-results").querySelector("img"), null);
});

test("Load more adds the next page below, and goes after the last", async () => {
  const { timers, server, type, find, shown, doc } = setup("b");
  type("note");
  await timers.fire();
  await server.answer(0, { threads: [thread("a", "Note 1"), thread("b", "Note 2")], next_page: 2 });
  assert.equal(find("search-more").hidden, false);
  assert.equal(find("search-status").textContent, "2+ conversations match");
  assert.equal(find("search-results").querySelector("[aria-current]").dataset.threadId, "b");
  find("search-more").focus();
  find("search-more").click();
  assert.equal(server.paths[1], "/api/threads?q=note&page=2");
  await server.answer(1, { threads: [thread("c", "Note 3")], next_page: null });
  assert.deepEqual(shown(), ["Note 1", "Note 2", "Note 3"]);
  assert.equal(find("search-more").hidden, true);
  assert.equal(doc.activeElement.textContent, "Note 3"); // focus is not lost with the button
  assert.equal(find("search-status").textContent, "3 conversations match");
});

test("clearing the box, or Escape in it, brings the normal list back", async () => {
  const { window, timers, server, type, find } = setup();
  type("note");
  await timers.fire();
  await server.answer(0, { threads: [thread("a", "Note")], next_page: 2 });
  type("");
  assert.equal(find("threads").hidden, false);
  assert.equal(find("search-results").hidden, true);
  assert.equal(find("search-more").hidden, true);
  assert.equal(find("search-status").hidden, true);

  type("note");
  await timers.fire();
  const escape = new window.KeyboardEvent("keydown", { key: "Escape", bubbles: true, cancelable: true });
  let reachedPage = false;
  window.document.addEventListener("keydown", () => { reachedPage = true; });
  find("thread-search").dispatchEvent(escape);
  assert.equal(find("thread-search").value, "");
  assert.equal(find("threads").hidden, false);
  assert.equal(reachedPage, false); // Escape cleared the box; it did not also stop a reply
  await server.answer(1, { threads: [thread("a", "Note")], next_page: null }); // too late
  assert.equal(find("search-results").hidden, true);
  assert.equal(find("threads").hidden, false);
});

test("a failed search says why", async () => {
  const { timers, server, type, find } = setup();
  type("x");
  await timers.fire();
  await server.fail(0, "'q' must be text of at most 200 characters.");
  assert.equal(find("search-status").textContent, "Could not search: 'q' must be text of at most 200 characters.");
});

test("the header shows the open conversation's title and export links, once there is one", async () => {
  const { window, doc, find } = setup();
  const root = find("chat");
  new ConversationHeader({
    root,
    threadList: find("threads"),
    header: find("conversation-header"),
    title: find("conversation-title"),
    button: find("export"),
    menu: find("export-menu"),
  });
  assert.equal(find("conversation-header").hidden, true); // a new chat: nothing to export
  root.dataset.threadId = "t1"; // its first message made it a conversation
  await flush();
  assert.equal(find("conversation-header").hidden, false);
  assert.equal(find("conversation-title").textContent, "Normal list");
  const links = [...find("export-menu").querySelectorAll("a")].map((a) => a.getAttribute("href"));
  assert.deepEqual(links, ["/api/threads/t1/export?format=markdown", "/api/threads/t1/export?format=json"]);

  find("threads").querySelector("a").textContent = "<b>Renamed</b>";
  await flush();
  assert.equal(find("conversation-title").textContent, "<b>Renamed</b>");
  assert.equal(find("conversation-title").querySelector("b"), null);

  find("export").click();
  assert.equal(find("export-menu").hidden, false);
  assert.equal(find("export").getAttribute("aria-expanded"), "true");
  find("export-menu").querySelector("a").dispatchEvent(new window.KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
  assert.equal(find("export-menu").hidden, true);
  assert.equal(doc.activeElement, find("export"));
  find("export").click();
  doc.body.click(); // a click elsewhere closes it
  assert.equal(find("export-menu").hidden, true);
  assert.equal(find("export").getAttribute("aria-expanded"), "false");
});

test("text already in the box when the page starts is searched for", async () => {
  const window = page();
  const doc = window.document;
  const find = (id) => doc.getElementById(id);
  find("thread-search").value = "typed early";
  const timers = fakeTimers();
  const server = fakeServer();
  new SidebarSearch({
    input: find("thread-search"), threads: find("threads"), results: find("search-results"),
    status: find("search-status"), more: find("search-more"), request: server.request, timers,
  });
  await timers.fire();
  assert.deepEqual(server.paths, ["/api/threads?q=typed%20early&page=1"]);
});
