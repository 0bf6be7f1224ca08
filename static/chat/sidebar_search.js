// Searching conversations from the sidebar: what is typed is looked up on the server
// (GET /api/threads?q=, docs/api.md) once typing pauses, and the matches replace the
// sidebar's list, a page at a time ("Load more"), until the box is cleared (Escape clears
// it). Titles are text, never markup.

export const SEARCH_DELAY_MS = 250;

export class SidebarSearch {
  // `request(path)` resolves with the JSON answer of a GET (ChatClient.request) or throws
  // an Error whose message can be shown; `currentThreadId()` is the open conversation's id.
  constructor({ input, threads, results, status, more, request, currentThreadId = () => "", timers = globalThis }) {
    Object.assign(this, { input, threads, results, status, more, request, currentThreadId, timers });
    this.text = ""; // the search shown ("" when the normal list is)
    this.nextPage = null;
    this.timer = 0;
    this.generation = 0; // answers to anything but the latest request are dropped
    input.addEventListener("input", () => this.typed());
    input.addEventListener("keydown", (event) => this.key(event));
    more.addEventListener("click", () => this.search(this.text, this.nextPage));
    if (input.value.trim()) this.typed(); // typed before this ran, or restored by the browser
  }

  typed() {
    this.timers.clearTimeout(this.timer);
    const text = this.input.value.trim();
    if (!text) return this.clear();
    this.timer = this.timers.setTimeout(() => this.search(text), SEARCH_DELAY_MS);
  }

  key(event) {
    if (event.isComposing) return;
    if (event.key === "Escape" && this.input.value) {
      // Clears the box only: not also the page's Escape (stopping a streaming reply).
      event.preventDefault();
      event.stopPropagation();
      this.input.value = "";
      this.clear();
    } else if (event.key === "Enter") {
      event.preventDefault();
      this.timers.clearTimeout(this.timer);
      const text = this.input.value.trim();
      if (text) this.search(text);
    }
  }

  // Shows page `page` of the matches for `text` (the first replaces what is shown, the next
  // ones are added below it).
  async search(text, page = 1) {
    const generation = ++this.generation;
    this.results.setAttribute("aria-busy", "true");
    let answer;
    try {
      answer = await this.request(`/api/threads?q=${encodeURIComponent(text)}&page=${page}`);
    } catch (error) {
      if (generation !== this.generation) return;
      this.results.removeAttribute("aria-busy");
      this.show(`Could not search: ${error.message}`);
      return;
    }
    if (generation !== this.generation) return;
    this.results.removeAttribute("aria-busy");
    if (page === 1) this.results.replaceChildren();
    const added = answer.threads.map((thread) => this.item(thread));
    this.results.append(...added);
    this.text = text;
    this.nextPage = answer.next_page ?? null;
    const hadFocus = this.more.ownerDocument.activeElement === this.more;
    this.more.hidden = this.nextPage === null;
    if (hadFocus && this.more.hidden) added[0]?.querySelector("a").focus();
    const count = this.results.children.length;
    this.show(
      count === 0
        ? "No conversations match."
        : `${count}${this.more.hidden ? "" : "+"} ${count === 1 ? "conversation matches" : "conversations match"}`,
    );
  }

  item(thread) {
    const doc = this.results.ownerDocument;
    const item = doc.createElement("li");
    item.dataset.threadId = thread.id;
    const link = doc.createElement("a");
    link.href = `/t/${encodeURIComponent(thread.id)}`;
    link.textContent = thread.title; // text, never markup
    if (thread.id === this.currentThreadId()) item.setAttribute("aria-current", "page");
    item.append(link);
    return item;
  }

  show(message) {
    this.status.textContent = message;
    this.status.hidden = false;
    this.threads.hidden = true;
    this.results.hidden = false;
  }

  // Back to the normal list.
  clear() {
    this.generation += 1;
    this.timers.clearTimeout(this.timer);
    this.text = "";
    this.nextPage = null;
    this.results.removeAttribute("aria-busy");
    this.results.replaceChildren();
    this.results.hidden = this.status.hidden = this.more.hidden = true;
    this.status.textContent = "";
    this.threads.hidden = false;
  }
}

// The chat page's search box (templates/chat.html).
export function setupSidebarSearch({ request, currentThreadId }) {
  const find = (id) => document.getElementById(id);
  return new SidebarSearch({
    input: find("thread-search"),
    threads: find("threads"),
    results: find("search-results"),
    status: find("search-status"),
    more: find("search-more"),
    request,
    currentThreadId,
  });
}
