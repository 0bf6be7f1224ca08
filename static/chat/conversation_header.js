// The open conversation's header: its title and an Export button that offers the
// conversation as Markdown or JSON (download links to GET /api/threads/<id>/export).
// A new chat gets it once its first message has made it a conversation.
//
// It follows the page rather than being told: the conversation open is the chat root's
// `data-thread-id` (set when a new chat's first message is sent), and its title is the one
// the sidebar shows for it (given by the server, renamed in place).

export const FORMATS = ["markdown", "json"];

export function exportUrl(threadId, format) {
  return `/api/threads/${encodeURIComponent(threadId)}/export?format=${format}`;
}

export class ConversationHeader {
  constructor({ root, header, title, button, menu, threadList }) {
    Object.assign(this, { root, header, title, button, menu, threadList });
    const doc = root.ownerDocument;
    const watch = (target, options) => new (doc.defaultView.MutationObserver)(() => this.update()).observe(target, options);
    watch(root, { attributes: true, attributeFilter: ["data-thread-id"] });
    watch(threadList, { childList: true, subtree: true, characterData: true });
    button.addEventListener("click", () => this.toggle(menu.hidden));
    // Escape closes the menu (and does nothing else: a streaming reply is not stopped).
    header.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !menu.hidden) {
        event.preventDefault();
        event.stopPropagation();
        this.toggle(false);
        button.focus();
      }
    });
    menu.addEventListener("click", (event) => {
      if (event.target.closest("a")) this.toggle(false);
    });
    doc.addEventListener("click", (event) => {
      if (!menu.hidden && !header.contains(event.target)) this.toggle(false);
    });
    this.update();
  }

  toggle(open) {
    this.menu.hidden = !open;
    this.button.setAttribute("aria-expanded", String(open));
  }

  update() {
    const threadId = this.root.dataset.threadId || "";
    this.header.hidden = !threadId;
    if (!threadId) return;
    for (const format of FORMATS) {
      this.menu.querySelector(`a[data-format="${format}"]`).href = exportUrl(threadId, format);
    }
    const items = this.threadList.querySelectorAll("li[data-thread-id]");
    const shown = [...items].find((item) => item.dataset.threadId === threadId);
    const title = shown?.querySelector("a")?.textContent.trim();
    if (title && this.title.textContent !== title) this.title.textContent = title; // text, never markup
  }
}

// The chat page's header (templates/chat.html).
export function setupConversationHeader({ root, threadList }) {
  const find = (id) => document.getElementById(id);
  return new ConversationHeader({
    root,
    threadList,
    header: find("conversation-header"),
    title: find("conversation-title"),
    button: find("export"),
    menu: find("export-menu"),
  });
}
