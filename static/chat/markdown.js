// Markdown rendering for model replies: marked for parsing, highlight.js for code blocks and
// DOMPurify for sanitizing (model output is untrusted). No library is imported here: the page
// passes them in (see vendor.js), and so can Node tests.
//
//   import { marked, DOMPurify, hljs } from "./vendor.js";
//   import { createRenderer, attachCopyHandler } from "./markdown.js";
//   const md = createRenderer({ marked, DOMPurify, hljs });
//   body.innerHTML = md.renderMarkdown(text);               // a complete reply
//   const view = md.createStreamView(body);                 // a reply that grows
//   view.update(textSoFar); ... view.finish(finalText);
//   attachCopyHandler(document.getElementById("messages")); // once, for every code block

const COPY_LABEL = "Copy";
const COPIED_LABEL = "Copied";
const COPY_FAILED_LABEL = "Copy failed";
const COPY_BUTTON_HTML = `<button type="button" class="copy" aria-label="Copy code">${COPY_LABEL}</button>`;

// While streaming, code blocks longer than this are shown as plain text (highlighted once done).
export const STREAM_HIGHLIGHT_LIMIT = 4000;
// The stream view highlights an open top-level code block in chunks of about this many
// characters: finished chunks are never highlighted again.
export const CODE_CHUNK_CHARS = 512;

// A fence opening line (CommonMark: 3+ backticks or tildes; a backtick fence's info string
// has no backtick). Any indentation is accepted so fences nested in list items are tracked too.
const FENCE_OPEN = /^([ \t]*)(`{3,}|~{3,})(.*)$/;
const FENCE_CLOSE = /^([ \t]*)(`{3,}|~{3,})[ \t]*$/;
// The start of a closing fence being typed: hidden while streaming.
const PARTIAL_FENCE = /^[ \t]*(`+|~+)[ \t]*$/;
const BLANK = /^[ \t]*$/;
const LANGUAGE = /^[A-Za-z0-9_#+.-]{1,40}$/;
// Text that can be appended to the end of a rendered paragraph as is: no newline and no
// character that markdown gives a meaning to (emphasis, code, links, HTML, entities, tables...).
const PLAIN_DELTA = /^(?:[A-Za-z0-9 \t,.;:!?'"%$/(-]|[^\x00-\x7F])*$/;
// ...unless, with the word it continues, it could make an autolink or a link destination.
const LINK_WORD = /[@&\\]|:\/\/|www\.|\]\(/i;
// The last line of the source already has two words, one of them with a letter or digit: its
// kind (paragraph, list item, heading, table row...) cannot change any more on this line.
const SETTLED_LINE = /^[ \t]*\S+[ \t]+\S/;
const HAS_WORD = /[\p{L}\p{N}]/u;
const TEXT_BLOCKS = new Set(["P", "LI", "H1", "H2", "H3", "H4", "H5", "H6", "TD", "TH"]);

// Links and images: http, https, mailto and relative URLs only (javascript:, data:, vbscript:
// and every other scheme lose their href/src). Same shape as DOMPurify's default regexp.
export const SAFE_URI = /^(?:(?:https?|mailto):|[^a-z]|[a-z+.-]+(?:[^a-z+.\-:]|$))/i;

export const SANITIZE_CONFIG = Object.freeze({
  USE_PROFILES: { html: true }, // no SVG or MathML
  FORBID_TAGS: [
    "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "form",
    "input", "textarea", "select", "option", "link", "meta", "base", "noscript", "template",
    "svg", "math",
  ],
  FORBID_ATTR: ["style", "srcset", "formaction", "action"],
  ALLOWED_URI_REGEXP: SAFE_URI,
  ALLOW_DATA_ATTR: false,
  SANITIZE_NAMED_PROPS: true, // id/name get a "user-content-" prefix: no DOM clobbering
});

export function escapeHtml(text) {
  return String(text)
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

function fenceOpening(line) {
  const m = FENCE_OPEN.exec(line);
  if (!m || (m[2][0] === "`" && m[3].includes("`"))) return null;
  return { indent: m[1], char: m[2][0], len: m[2].length, info: m[3].trim() };
}

// Indentation width in columns (a tab goes to the next multiple of 4, as in CommonMark).
function columns(indent) {
  let width = 0;
  for (const ch of indent) width = ch === "\t" ? width + 4 - (width % 4) : width + 1;
  return width;
}

function isFenceClose(line, fence) {
  const m = FENCE_CLOSE.exec(line);
  return !!m && m[2][0] === fence.char && m[2].length >= fence.len
    && columns(m[1]) <= columns(fence.indent) + 3;
}

/** The language named by a fence's info string ("python {x}" → "python"), or "". */
export function fenceLanguage(info) {
  const word = String(info || "").trim().split(/\s+/)[0] || "";
  return LANGUAGE.test(word) ? word.toLowerCase() : "";
}

/**
 * Splits a growing markdown text into blocks, incrementally: feed() it longer and longer
 * versions of the same text and it only looks at what is new. A block starts at a line that
 * begins with a non-blank character after a blank line outside fenced code, at a top-level
 * (unindented) fence, or right after a top-level fence closes. Blocks like that render the
 * same on their own as in the whole text (except that lists split by blank lines become
 * separate lists, and reference-style link definitions only apply within their block).
 *
 * boundaries: start offsets of the blocks (the first is 0); every block but the last is final.
 * fence: the open fenced code block at the end of the complete lines, or null:
 *   { indent, char, len, info, start (offset of the fence line), contentStart }.
 * pos: offset where the last, incomplete line starts (all lines before it have been scanned).
 */
export class BlockScanner {
  constructor() {
    this.pos = 0;
    this.boundaries = [0];
    this.fence = null;
    this.canSplit = false;
  }

  get openStart() {
    return this.boundaries[this.boundaries.length - 1];
  }

  feed(text) {
    let nl;
    while ((nl = text.indexOf("\n", this.pos)) !== -1) {
      this.#line(text.slice(this.pos, nl).replace(/\r$/, ""), this.pos, nl + 1);
      this.pos = nl + 1;
    }
    // A new block may start on the incomplete last line: its first character decides.
    if (!this.fence && this.canSplit && this.pos < text.length && /[^ \t\r\n]/.test(text[this.pos])) {
      this.#boundary(this.pos);
    }
    return this;
  }

  #boundary(offset) {
    if (offset > this.openStart) this.boundaries.push(offset);
  }

  #line(line, start, end) {
    const fence = this.fence;
    if (fence) {
      if (isFenceClose(line, fence)) {
        this.fence = null;
        this.canSplit = false;
        if (fence.indent === "") this.#boundary(end);
      }
      return;
    }
    if (BLANK.test(line)) {
      this.canSplit = true;
      return;
    }
    const opening = fenceOpening(line);
    const unindented = !/^[ \t]/.test(line);
    if (unindented && (this.canSplit || (opening && opening.indent === ""))) this.#boundary(start);
    if (opening) this.fence = { ...opening, start, contentStart: end };
    this.canSplit = false;
  }
}

/**
 * For a text that may be cut anywhere: closes a fenced code block left open at the end (and
 * hides a closing fence being typed), and turns a fence line being typed ("``", "```py")
 * into an empty code block, so partial replies never show stray backticks.
 */
export function closeOpenFence(text) {
  const scanner = new BlockScanner().feed(text);
  const head = text.slice(0, scanner.pos);
  let partial = text.slice(scanner.pos);
  const fence = scanner.fence;
  if (fence) {
    const m = PARTIAL_FENCE.exec(partial);
    if (m && m[1][0] === fence.char) partial = "";
    const body = head + partial;
    // marked runs an unclosed fence to the end of its container anyway; an explicit closer is
    // only added where it cannot be read as text (a fence indented 4+ may be indented code).
    if (columns(fence.indent) > 3) return body;
    const sep = body === "" || body.endsWith("\n") ? "" : "\n";
    return body + sep + fence.indent + fence.char.repeat(fence.len);
  }
  const opening = fenceOpening(partial);
  if (opening) return `${text}\n${opening.indent}${opening.char.repeat(opening.len)}`;
  const m = /^([ \t]*)``$/.exec(partial);
  if (m) return `${head}${m[1]}\`\`\`\n${m[1]}\`\`\``;
  return text;
}

const HOOKED = new WeakSet();

function addSanitizeHooks(purify) {
  if (HOOKED.has(purify)) return; // hooks are per DOMPurify instance: add ours only once
  HOOKED.add(purify);
  purify.addHook("uponSanitizeAttribute", (_node, data) => {
    if (/^on/i.test(data.attrName)) data.keepAttr = false;
  });
  purify.addHook("afterSanitizeAttributes", (node) => {
    if (node.nodeName !== "A") return;
    if (node.hasAttribute("href")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    } else {
      node.removeAttribute("target");
    }
  });
}

function privatePurify(DOMPurify, win) {
  if (typeof DOMPurify !== "function") {
    throw new TypeError("createRenderer: DOMPurify must be the DOMPurify export or an instance");
  }
  // A fresh instance per renderer, so our hooks never reach other users of DOMPurify.
  if (win) {
    const own = DOMPurify(win);
    if (own.isSupported) return own;
  }
  if (!DOMPurify.isSupported || typeof DOMPurify.sanitize !== "function") {
    throw new TypeError("createRenderer: DOMPurify has no window (pass DOMPurify(window) or window)");
  }
  return DOMPurify;
}

/**
 * createRenderer({ marked, DOMPurify, hljs, window?, rawHtml? })
 *   marked:    the `marked` export of marked (only marked.Lexer/Parser/Renderer/getDefaults are
 *              used: the global marked instance is never reconfigured).
 *   DOMPurify: the default export of dompurify (or an instance made with DOMPurify(window)).
 *   hljs:      highlight.js (optional: without it code is shown as plain text).
 *   window:    window for a private DOMPurify instance (default globalThis.window); without
 *              one the given DOMPurify instance is used and gets the hooks (once).
 *   rawHtml:   "escape" (default: HTML in the markdown is shown as text) or "sanitize".
 */
export function createRenderer({
  marked, DOMPurify, hljs = null, window: win = globalThis.window, rawHtml = "escape",
} = {}) {
  if (!marked || typeof marked.Lexer !== "function" || typeof marked.Parser !== "function") {
    throw new TypeError("createRenderer: marked must be the `marked` export of marked");
  }
  const purify = privatePurify(DOMPurify, win);
  addSanitizeHooks(purify);
  let streamingParse = false;
  let highlightSkipped = false;

  function codeClass(lang) {
    return lang ? `hljs language-${lang}` : "hljs";
  }

  function knownLanguage(lang) {
    return !!(lang && hljs && typeof hljs.getLanguage === "function" && hljs.getLanguage(lang));
  }

  /** Highlighted (or escaped) HTML for code; not sanitized yet. */
  function highlightCode(code, lang, { streaming = false } = {}) {
    if (knownLanguage(lang)) {
      if (streaming && code.length > STREAM_HIGHLIGHT_LIMIT) {
        highlightSkipped = true;
      } else {
        try {
          return hljs.highlight(code, { language: lang, ignoreIllegals: true }).value;
        } catch {
          // fall through to plain text
        }
      }
    }
    return escapeHtml(code);
  }

  class ChatRenderer extends marked.Renderer {
    code({ text, lang }) {
      const language = fenceLanguage(lang);
      const code = String(text ?? "").replace(/\n$/, "");
      // Focusable: a code block wider than the reply scrolls, and keyboards scroll it too.
      return `<pre>${COPY_BUTTON_HTML}<code class="${codeClass(language)}" tabindex="0">`
        + `${highlightCode(code, language, { streaming: streamingParse })}</code></pre>\n`;
    }

    html({ text, block }) {
      if (rawHtml === "sanitize") return text;
      return block ? `<p>${escapeHtml(text.trim())}</p>\n` : escapeHtml(text);
    }

    checkbox({ checked }) {
      return checked ? "☑ " : "☐ "; // <input> is not allowed through the sanitizer
    }
  }

  const defaults = typeof marked.getDefaults === "function" ? marked.getDefaults() : {};
  const options = { ...defaults, async: false, gfm: true, breaks: false };
  options.renderer = new ChatRenderer(options);

  function sanitize(html) {
    return purify.sanitize(html, SANITIZE_CONFIG);
  }

  // { html, exact }: exact is false when streaming changed the rendering (a fence was closed
  // or a long code block was left unhighlighted), i.e. the final rendering will differ.
  function renderDetailed(text, { streaming = false } = {}) {
    const input = String(text ?? "");
    const source = streaming ? closeOpenFence(input) : input;
    streamingParse = streaming;
    highlightSkipped = false;
    let html;
    try {
      html = marked.Parser.parse(marked.Lexer.lex(source, options), options);
    } catch {
      html = `<p>${escapeHtml(input)}</p>`; // never lose the text over a parser error
    } finally {
      streamingParse = false;
    }
    return { html: sanitize(html), exact: source === input && !highlightSkipped };
  }

  function renderMarkdown(text, { streaming = false } = {}) {
    return renderDetailed(text, { streaming }).html;
  }

  const renderer = {
    renderMarkdown,
    renderDetailed,
    sanitize,
    highlightCode,
    codeClass,
    knownLanguage,
    purify,
    createStreamView(container, viewOptions) {
      return new StreamingMarkdownView(renderer, container, viewOptions);
    },
  };
  return renderer;
}

/**
 * Incremental rendering of a reply that grows: update(textSoFar) at most once per frame, then
 * finish(finalText). The text is split into blocks (see BlockScanner). Completed blocks are
 * rendered once and their DOM nodes are never touched again; only the last (open) block is
 * rendered again, and only when it has to be:
 * - new plain words at the end of a paragraph, list item, heading or table cell (no newline
 *   before them, no markdown punctuation) are appended to it as text, without parsing, and
 *   new blanks alone change nothing;
 * - an open top-level code block is never re-parsed: each new line is highlighted with the
 *   rest of its chunk (CODE_CHUNK_CHARS) and the incomplete last line is shown as plain text;
 * - a block whose last rendering is already final (nothing but blank lines came after it) is
 *   kept as it is when it completes.
 *
 * stats: { updates, parses, appends, parsedChars, completedBlocks, frozenNodes }
 *   parses: markdown parses; appends: updates that only appended plain text;
 *   parsedChars: characters given to marked or highlight.js in total;
 *   frozenNodes: the first `frozenNodes` child nodes of the container are completed blocks.
 */
export class StreamingMarkdownView {
  #text = "";
  #scanner = null;
  #completed = 0;
  #open = null; // { start, end, exact, nodes, point }: the open block as rendered
  #code = null; // the open top-level code block, rendered line by line
  #finished = false;

  constructor(renderer, container, { document: doc = container.ownerDocument } = {}) {
    this.renderer = renderer;
    this.container = container;
    this.document = doc;
    this.stats = {
      updates: 0, parses: 0, appends: 0, parsedChars: 0, completedBlocks: 0, frozenNodes: 0,
    };
    this.#restart();
  }

  get text() {
    return this.#text;
  }

  get finished() {
    return this.#finished;
  }

  #restart() {
    this.container.replaceChildren();
    this.#text = "";
    this.#scanner = new BlockScanner();
    this.#completed = 0;
    this.#open = null;
    this.#code = null;
    this.#finished = false;
    this.stats.completedBlocks = 0;
    this.stats.frozenNodes = 0;
  }

  /** Empties the container; the next update starts from scratch. */
  reset() {
    this.#restart();
  }

  /** Renders `text`, the whole reply so far (each call passes a longer text). */
  update(text) {
    this.#render(String(text ?? ""), false);
  }

  /** Renders the final text: the last block too is rendered as complete. */
  finish(text = this.#text) {
    this.#render(String(text ?? ""), true);
  }

  // A cheap check that the text only grew (otherwise the view starts again).
  #extends(text) {
    const prev = this.#text;
    if (text.length < prev.length) return false;
    const n = Math.min(64, prev.length);
    return text.startsWith(prev.slice(prev.length - n), prev.length - n);
  }

  #render(text, final) {
    if (this.#finished) {
      if (text === this.#text) return;
      this.#restart();
    } else if (!this.#extends(text)) {
      this.#restart();
    }
    this.stats.updates += 1;
    this.#text = text;
    const scanner = this.#scanner.feed(text);
    const bounds = scanner.boundaries;
    while (this.#completed < bounds.length - 1) {
      this.#complete(text, bounds[this.#completed], bounds[this.#completed + 1]);
    }
    const start = scanner.openStart;
    if (final) {
      this.#complete(text, start, text.length);
      this.#finished = true;
      return;
    }
    const fence = scanner.fence;
    if (fence && fence.indent === "" && fence.start === start) {
      this.#renderOpenCode(text, fence);
    } else if (!this.#appendPlain(text, start)) {
      this.#renderOpen(text, start);
    }
  }

  #complete(text, start, end) {
    const open = this.#open;
    let nodes;
    if (open && open.start === start && open.exact && open.end <= end
        && text.slice(open.end, end).trim() === "") {
      nodes = open.nodes; // already final: keep the very same nodes
    } else {
      this.#clearOpen();
      nodes = this.#appendHtml(text.slice(start, end), false).nodes;
    }
    this.#open = null;
    this.#code = null;
    this.#completed += 1;
    this.stats.completedBlocks += 1;
    this.stats.frozenNodes += nodes.length;
  }

  #clearOpen() {
    for (const node of this.#open?.nodes ?? []) node.remove();
    this.#open = null;
    this.#code = null;
  }

  #appendHtml(source, streaming) {
    if (source.trim() === "") return { nodes: [], exact: true };
    this.stats.parses += 1;
    this.stats.parsedChars += source.length;
    const { html, exact } = this.renderer.renderDetailed(source, { streaming });
    const template = this.document.createElement("template");
    template.innerHTML = html;
    const nodes = Array.from(template.content.childNodes);
    this.container.append(template.content);
    return { nodes, exact };
  }

  #renderOpen(text, start) {
    this.#clearOpen();
    const source = text.slice(start);
    const { nodes, exact } = this.#appendHtml(source, true);
    this.#open = { start, end: text.length, exact, nodes, point: null };
    // Shortcuts only when this rendering is what the final one will be (no fence was closed).
    this.#open.point = exact ? this.#findAppendPoint(source, nodes) : null;
  }

  // Where plain words typed next would go, if that is certain: the source ends in a settled
  // line whose last text node is a direct child of a paragraph, list item, heading or table
  // cell (so not inside a link, code or emphasis) and shows the end of the source.
  #findAppendPoint(source, nodes) {
    const lastLine = source.slice(source.lastIndexOf("\n") + 1);
    if (!SETTLED_LINE.test(lastLine) || !HAS_WORD.test(lastLine)) return null;
    if (lastLine.includes("]:")) return null; // may yet be a link reference definition
    let leaf = null;
    for (let i = nodes.length - 1; i >= 0 && !leaf; i -= 1) leaf = lastMeaningfulLeaf(nodes[i]);
    if (!leaf || leaf.nodeType !== 3) return null;
    const block = leaf.parentNode;
    if (!block || !TEXT_BLOCKS.has(block.nodeName) || block.closest("pre, code, a")) return null;
    // Text glued to a link (an autolink's trailing punctuation) could still extend it.
    if (leaf.previousSibling?.nodeName === "A" && !/\s/.test(leaf.data)) return null;
    const shown = leaf.data.trimEnd().slice(-8);
    const typed = source.trimEnd();
    if (!shown || !typed.endsWith(shown)) return null;
    return {
      block,
      node: null, // the text node we append to, created on the first append
      // blanks typed but not shown (marked may drop trailing blanks): they separate words
      pending: /\s$/.test(leaf.data) ? "" : source.slice(typed.length),
      lineDone: false, // a newline came: the next word starts a new line
      word: /\S*$/.exec(typed)[0], // the last word so far: plain words may continue it
    };
  }

  #appendPlain(text, start) {
    const open = this.#open;
    if (!open || open.start !== start || text.length < open.end || this.#code) return false;
    const delta = text.slice(open.end);
    const point = open.point;
    if (!point) {
      if (!open.exact || delta.trim() !== "") return false;
      open.end = text.length; // trailing blanks change nothing
      return true;
    }
    const words = delta.trimEnd();
    if (words) {
      if (point.lineDone || /[\r\n]/.test(words) || !PLAIN_DELTA.test(words)) return false;
      const recent = point.pending + words;
      if (LINK_WORD.test(point.word + recent) || /\S{200}$/.test(point.word + recent)) return false;
      // A character right after *, _ or ~ can make (or unmake) emphasis; after ] a link.
      if (/[*_~`\]]$/.test(point.word) && /^\S/.test(recent)) return false;
      if (!point.node) {
        point.node = this.document.createTextNode("");
        point.block.append(point.node);
      }
      point.node.appendData(point.pending + words);
      point.word = /\s/.test(recent) ? /\S*$/.exec(recent)[0] : point.word + recent;
      point.pending = "";
    }
    const blanks = delta.slice(words.length);
    point.pending += blanks;
    if (/[\r\n]/.test(blanks)) point.lineDone = true;
    open.end = text.length;
    this.stats.appends += 1;
    return true;
  }

  // An open top-level fenced code block: complete lines are highlighted and appended in chunks
  // (a chunk is highlighted again with each new line until it reaches CODE_CHUNK_CHARS); the
  // incomplete last line is shown as plain text.
  #renderOpenCode(text, fence) {
    const doc = this.document;
    let state = this.#code;
    if (!state || state.start !== fence.start) {
      this.#clearOpen();
      const lang = fenceLanguage(fence.info);
      const pre = doc.createElement("pre");
      const button = doc.createElement("button");
      button.type = "button";
      button.className = "copy";
      button.setAttribute("aria-label", "Copy code");
      button.textContent = COPY_LABEL;
      const code = doc.createElement("code");
      code.className = this.renderer.codeClass(lang);
      code.tabIndex = 0;
      const partial = doc.createTextNode("");
      code.append(partial);
      pre.append(button, code);
      this.container.append(pre);
      this.#open = { start: fence.start, end: text.length, exact: false, nodes: [pre], point: null };
      state = this.#code = {
        start: fence.start, lang, code, partial, live: null,
        chunkStart: fence.contentStart, linesEnd: fence.contentStart,
      };
    }
    const linesEnd = this.#scanner.pos;
    if (linesEnd > state.linesEnd) {
      if (!state.live) {
        state.live = doc.createElement("span");
        state.code.insertBefore(state.live, state.partial);
      }
      const chunk = text.slice(state.chunkStart, linesEnd);
      this.stats.parsedChars += chunk.length;
      state.live.innerHTML = this.renderer.sanitize(this.renderer.highlightCode(chunk, state.lang));
      state.linesEnd = linesEnd;
      if (chunk.length >= CODE_CHUNK_CHARS) {
        state.chunkStart = linesEnd;
        state.live = null;
      }
    }
    let partial = text.slice(linesEnd);
    const m = PARTIAL_FENCE.exec(partial);
    if (m && m[1][0] === fence.char) partial = "";
    if (state.partial.data !== partial) state.partial.data = partial;
    this.#open.end = text.length;
  }
}

function lastMeaningfulLeaf(node) {
  if (node.nodeType === 3) return /\S/.test(node.data) ? node : null;
  if (node.nodeType !== 1) return null;
  for (let child = node.lastChild; child; child = child.previousSibling) {
    if (child.nodeType === 3 && !/\S/.test(child.data)) continue;
    return child.nodeType === 1 && child.firstChild ? lastMeaningfulLeaf(child) : child;
  }
  return null;
}

/**
 * One delegated click listener on `root` for every code block's copy button (no inline
 * handlers: the page's CSP has no 'unsafe-inline'). Copies the <code> element's textContent,
 * shows "Copied" (class "copied") for `resetMs`, then "Copy" again. Returns a detach function.
 */
export function attachCopyHandler(root, clipboard = globalThis.navigator?.clipboard, { resetMs = 1500 } = {}) {
  const timers = new WeakMap();
  const onClick = async (event) => {
    let target = event.target;
    if (target && typeof target.closest !== "function") target = target.parentElement;
    const button = target?.closest?.("button.copy");
    if (!button || !root.contains(button)) return;
    const code = button.closest("pre")?.querySelector("code");
    if (!code) return;
    const board = clipboard ?? globalThis.navigator?.clipboard;
    let ok = false;
    try {
      await board.writeText(code.textContent);
      ok = true;
    } catch {
      ok = false;
    }
    button.textContent = ok ? COPIED_LABEL : COPY_FAILED_LABEL;
    button.classList.toggle("copied", ok);
    clearTimeout(timers.get(button));
    timers.set(button, setTimeout(() => {
      button.textContent = COPY_LABEL;
      button.classList.remove("copied");
    }, resetMs));
  };
  root.addEventListener("click", onClick);
  return () => root.removeEventListener("click", onClick);
}
