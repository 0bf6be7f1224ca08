// Tests for static/chat/markdown.js: run with `node --test tests/js/` (or `npm test`).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { JSDOM } from "jsdom";
import { marked } from "../../node_modules/marked/lib/marked.esm.js";
import DOMPurify from "../../node_modules/dompurify/dist/purify.es.mjs";
import hljs from "../../node_modules/@highlightjs/cdn-assets/es/highlight.min.js";
import {
  BlockScanner,
  STREAM_HIGHLIGHT_LIMIT,
  attachCopyHandler,
  closeOpenFence,
  createRenderer,
} from "../../static/chat/markdown.js";

const { window } = new JSDOM("<!doctype html><html><body></body></html>");
const { document } = window;

// As the brief describes it: a DOMPurify bound to a window, no window option.
const md = createRenderer({ marked, DOMPurify: DOMPurify(window), hljs });
// A private DOMPurify instance made from the window, raw HTML sanitized instead of escaped.
const mdSanitize = createRenderer({ marked, DOMPurify, hljs, window, rawHtml: "sanitize" });

/** The offline model's reply (streaming/offline_model.py, offline_reply(...)), verbatim. */
const OFFLINE_REPLY = "**Offline model** — no `OPENAI_API_KEY` is configured, so this reply comes from "
  + "the built-in offline model, not from a language model.\n\n"
  + "### Your message\n\n"
  + "> How do I greet someone in Python? Show me a small function.\n\n"
  + "That is 12 words, turn 1 of this conversation.\n\n"
  + "### What you can try\n\n"
  + "- Watch this reply stream in, about 40 tokens per second.\n"
  + "- Reload the page or switch tabs mid-reply: it carries on where it was.\n"
  + "- Press **Stop** to end a reply early; the partial text is kept.\n\n"
  + "```python\n"
  + "def greet(name: str) -> str:\n"
  + '    """Say hello."""\n'
  + '    return f"Hello, {name}!"\n'
  + "```\n\n"
  + "Set `OPENAI_API_KEY` (and optionally `OPENAI_BASE_URL` and `AGENT_MODEL`) to talk to "
  + "a real model.";

/** A realistic ~1,500 character reply of many blocks: the offline reply and more. */
const LONG_REPLY = [
  OFFLINE_REPLY,
  "### How it works",
  "The function takes a *name* and returns a greeting; the `f\"...\"` string puts the name "
    + "into the text. Call it from a small script:",
  "```python\nimport sys\n\n\ndef main() -> None:\n"
    + "    name = sys.argv[1] if len(sys.argv) > 1 else \"world\"\n"
    + "    print(greet(name))\n\n\nif __name__ == \"__main__\":\n    main()\n```",
  "1. Save both functions in `greet.py`.\n2. Run `python greet.py Ada` in a terminal.\n"
    + "3. See [the Python tutorial](https://docs.python.org/3/tutorial/) for more.",
  "| Variable | Meaning |\n| --- | --- |\n| `OPENAI_BASE_URL` | another endpoint |\n"
    + "| `AGENT_MODEL` | the model to use |",
  "Type hints such as `name: str` are optional in Python, but they help editors and "
    + "checkers like mypy catch mistakes before the code runs.",
  "That's all: **no network** is needed for this reply.",
].join("\n\n");

/** How the offline model streams a text (TOKEN_PATTERN in offline_model.py). */
const offlineTokens = (text) => text.match(/\s*\S+|\s+$/g);
const whitespaceTokens = (text) => text.split(/(?<=\s)/);

function parse(html) {
  const root = document.createElement("div");
  root.innerHTML = html;
  return root;
}

const visible = (node) => node.textContent.replace(/\s+/g, " ").trim();

function textWithoutButtons(root) {
  const copy = root.cloneNode(true);
  for (const button of copy.querySelectorAll("button")) button.remove();
  return copy.textContent;
}

function quadraticCost(tokens) {
  let length = 0;
  let total = 0;
  for (const token of tokens) {
    length += token.length;
    total += length;
  }
  return total;
}

describe("renderMarkdown: complete replies", () => {
  test("heading, list and a highlighted python fence", () => {
    const root = parse(md.renderMarkdown(OFFLINE_REPLY));
    assert.equal(root.querySelectorAll("h3").length, 2);
    assert.equal(root.querySelector("h3").textContent, "Your message");
    assert.equal(root.querySelectorAll("ul > li").length, 3);
    assert.ok(root.querySelector("blockquote"));
    assert.equal(root.querySelector("strong").textContent, "Offline model");
    const code = root.querySelector("pre > code.hljs.language-python");
    assert.ok(code, "pre > code.hljs.language-python");
    assert.equal(code.className, "hljs language-python");
    assert.ok(code.querySelector("span.hljs-keyword"), "highlight spans");
    assert.equal(
      code.textContent,
      'def greet(name: str) -> str:\n    """Say hello."""\n    return f"Hello, {name}!"',
    );
    assert.ok(!root.textContent.includes("```"));
  });

  test("each code block gets one copy button", () => {
    const root = parse(md.renderMarkdown("```\nplain\n```\n\n```js\nlet a = 1;\n```\n\n```nosuchlang\nx\n```"));
    const pres = root.querySelectorAll("pre");
    assert.equal(pres.length, 3);
    for (const pre of pres) {
      const buttons = pre.querySelectorAll("button");
      assert.equal(buttons.length, 1);
      const button = buttons[0];
      assert.equal(button.getAttribute("type"), "button");
      assert.equal(button.className, "copy");
      assert.equal(button.getAttribute("aria-label"), "Copy code");
      assert.equal(button.textContent, "Copy");
      assert.equal(button.getAttributeNames().some((name) => name.startsWith("on")), false);
    }
    const [plain, js, unknown] = [...root.querySelectorAll("pre > code")];
    assert.equal(plain.className, "hljs");
    assert.equal(plain.innerHTML, "plain");
    assert.equal(js.className, "hljs language-js");
    assert.ok(js.querySelector("span"));
    assert.equal(unknown.className, "hljs language-nosuchlang");
    assert.equal(unknown.innerHTML, "x", "unknown language: escaped plain text");
  });

  test("code blocks can be scrolled from the keyboard, complete or streaming", () => {
    const text = "```python\nprint('a line wider than the reply')\n```\n\nAfter.";
    const complete = parse(md.renderMarkdown(text)).querySelector("pre > code");
    assert.equal(complete.getAttribute("tabindex"), "0");
    const container = document.createElement("div");
    const view = md.createStreamView(container, { document });
    view.update(text.slice(0, 20)); // inside the open fence
    assert.equal(container.querySelector("pre > code").getAttribute("tabindex"), "0");
    view.finish(text);
    assert.equal(container.querySelector("pre > code").getAttribute("tabindex"), "0");
  });

  test("code is escaped, not interpreted", () => {
    const root = parse(md.renderMarkdown("```html\n<script>alert(1)</script>\n```\n\n```\n<b>x</b>\n```"));
    assert.equal(root.querySelector("script"), null);
    assert.equal(root.querySelector("b"), null);
    const codes = root.querySelectorAll("code");
    assert.equal(codes[0].textContent, "<script>alert(1)</script>");
    assert.equal(codes[1].textContent, "<b>x</b>");
  });

  test("task list items are shown without <input> elements", () => {
    const root = parse(md.renderMarkdown("- [ ] todo\n- [x] done"));
    assert.equal(root.querySelector("input"), null);
    assert.deepEqual([...root.querySelectorAll("li")].map((li) => li.textContent), ["☐ todo", "☑ done"]);
  });
});

describe("renderMarkdown: partial text while streaming", () => {
  const cases = [
    ["Intro\n\n```python\ndef f(x):\n    return", "def f(x):\n    return", "python"],
    ["```", "", ""],
    ["``", "", ""],
    ["```py", "", "py"],
    ["Intro\n\n```py", "", "py"],
    ["~~~", "", ""],
    ["```python\ndef f(x):\n", "def f(x):", "python"],
    ["```python\ndef f(x):\n    return x\n``", "def f(x):\n    return x", "python"],
    ["```python\ndef f(x):\n    return x\n```", "def f(x):\n    return x", "python"],
    ["Text\n\n- item\n\n  ```js\n  let a = 1;\n  let b", "let a = 1;\nlet b", "js"],
  ];
  for (const [text, code, lang] of cases) {
    test(`cut inside a fence: ${JSON.stringify(text)}`, () => {
      const root = parse(md.renderMarkdown(text, { streaming: true }));
      const pre = root.querySelectorAll("pre");
      assert.equal(pre.length, 1, root.innerHTML);
      const element = pre[0].querySelector("code");
      assert.ok(element, root.innerHTML);
      assert.equal(element.textContent, code);
      assert.equal(element.className, lang ? `hljs language-${lang}` : "hljs");
      const shown = textWithoutButtons(root);
      assert.ok(!shown.includes("`") && !shown.includes("~~~"), `stray fence in ${JSON.stringify(shown)}`);
    });
  }

  test("the partial python fence is highlighted", () => {
    const root = parse(md.renderMarkdown("Intro\n\n```python\ndef f(x):\n    return", { streaming: true }));
    assert.equal(root.querySelector("p").textContent, "Intro");
    assert.ok(root.querySelector("code.language-python span.hljs-keyword"));
  });

  test("closeOpenFence only touches open fences", () => {
    assert.equal(closeOpenFence("a\n\n```py\nx = 1"), "a\n\n```py\nx = 1\n```");
    assert.equal(closeOpenFence("```py\nx\n```\n\ntext"), "```py\nx\n```\n\ntext");
    assert.equal(closeOpenFence("````md\n```\ninner"), "````md\n```\ninner\n````");
    assert.equal(closeOpenFence("- a\n\n  ~~~\n  code"), "- a\n\n  ~~~\n  code\n  ~~~");
    assert.equal(closeOpenFence("plain `code"), "plain `code");
  });

  test("unclosed inline code and emphasis stay readable", () => {
    for (const text of ["Use `npm inst", "This is **very imp", "An *emph"]) {
      const root = parse(md.renderMarkdown(text, { streaming: true }));
      assert.equal(root.querySelector("pre"), null);
      assert.equal(visible(root), text);
    }
  });

  test("huge code blocks are not highlighted while streaming", () => {
    const body = "x = 1\n".repeat(Math.ceil(STREAM_HIGHLIGHT_LIMIT / 6) + 10);
    const streaming = parse(md.renderMarkdown(`\`\`\`python\n${body}`, { streaming: true }));
    assert.equal(streaming.querySelector("code span"), null);
    assert.equal(streaming.querySelector("code").textContent, body.trimEnd());
    const done = parse(md.renderMarkdown(`\`\`\`python\n${body}\`\`\``));
    assert.ok(done.querySelector("code span"));
  });
});

const DANGEROUS_TAGS = new Set([
  "SCRIPT", "IFRAME", "OBJECT", "EMBED", "FORM", "INPUT", "STYLE", "SVG", "MATH", "FRAME", "BASE",
  "META", "LINK",
]);
const URL_ATTRIBUTES = ["href", "src", "action", "formaction", "xlink:href", "background", "poster"];

function assertSafe(html) {
  const root = parse(html);
  for (const element of root.querySelectorAll("*")) {
    assert.ok(!DANGEROUS_TAGS.has(element.tagName.toUpperCase()), `<${element.tagName}> in ${html}`);
    for (const name of element.getAttributeNames()) {
      assert.ok(!name.toLowerCase().startsWith("on"), `${name} attribute in ${html}`);
      assert.notEqual(name.toLowerCase(), "style", `style attribute in ${html}`);
    }
    for (const name of URL_ATTRIBUTES) {
      const value = element.getAttribute(name);
      if (value === null) continue;
      const squashed = value.replace(/[\s\u0000-\u001f]/g, "").toLowerCase();
      assert.ok(!/^(?:javascript|vbscript|data):/.test(squashed) || (name === "src" && element.tagName === "IMG" && squashed.startsWith("data:image/")),
        `${name}=${value} in ${html}`);
    }
  }
  return root;
}

describe("sanitizing untrusted model output", () => {
  const payloads = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[x](javascript:alert(1))",
    "[y](JAVASCRIPT:alert(1))",
    '<a href="javascript:alert(1)">z</a>',
    "<svg onload=alert(1)>",
    '<iframe src="https://evil"></iframe>',
    '<iframe src="https://evil">',
    "[e](jav&#x61;script:alert(1))",
    "[f]( javascript:alert(1) )",
    '<a href="jAvAsCrIpT&colon;alert(1)">g</a>',
    "![i](javascript:alert(1))",
    "[d](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[v](vbscript:msgbox(1))",
    "<javascript:alert(1)>",
    "<details open ontoggle=alert(1)><summary>s</summary>t</details>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<form action=\"javascript:alert(1)\"><input name=x><button formaction=\"javascript:alert(1)\">b</button></form>",
    "<object data=\"https://evil\"></object><embed src=\"https://evil\">",
    "<style>body{display:none}</style><p style=\"position:fixed\">s</p>",
    "<a href=\"https://ok.example\" onclick=\"alert(1)\">ok</a>",
    "Some text <img src=\"x\" onerror=\"alert(1)\"> and **bold** text",
  ];

  for (const [name, renderer] of [["escape raw HTML", md], ["sanitize raw HTML", mdSanitize]]) {
    test(`${name}: every payload alone and all together`, () => {
      for (const payload of payloads) {
        assertSafe(renderer.renderMarkdown(payload));
        assertSafe(renderer.renderMarkdown(payload, { streaming: true }));
      }
      assertSafe(renderer.renderMarkdown(payloads.join("\n\n")));
      assertSafe(renderer.renderMarkdown(payloads.join(" ")));
    });

    test(`${name}: streaming view DOM is safe at every step`, () => {
      const container = document.createElement("div");
      const view = renderer.createStreamView(container, { document });
      const text = payloads.join("\n\n");
      let sofar = "";
      for (const token of offlineTokens(text)) {
        sofar += token;
        view.update(sofar);
        assertSafe(container.innerHTML);
      }
      view.finish(sofar);
      assertSafe(container.innerHTML);
    });
  }

  test("escaped raw HTML is shown as text", () => {
    const root = parse(md.renderMarkdown("<script>alert(1)</script>\n\nUse the <b> tag."));
    assert.equal(root.querySelector("script, b"), null);
    assert.equal(root.querySelector("p").textContent, "<script>alert(1)</script>");
    assert.match(root.textContent, /Use the <b> tag\./);
  });

  test("sanitized raw HTML keeps harmless markup and drops the rest", () => {
    const root = parse(mdSanitize.renderMarkdown("<b>bold</b> <img src=x onerror=alert(1)> <script>alert(1)</script>"));
    assert.equal(root.querySelector("b").textContent, "bold");
    const img = root.querySelector("img");
    assert.ok(img);
    assert.equal(img.getAttribute("onerror"), null);
    assert.equal(root.querySelector("script"), null);
  });

  test("javascript: links lose their href but keep their text", () => {
    for (const renderer of [md, mdSanitize]) {
      const root = parse(renderer.renderMarkdown("[x](javascript:alert(1)) and [y](JAVASCRIPT:alert(1))"));
      const links = root.querySelectorAll("a");
      assert.equal(links.length, 2);
      for (const link of links) {
        assert.equal(link.getAttribute("href"), null);
        assert.equal(link.getAttribute("target"), null);
      }
      assert.equal(visible(root), "x and y");
    }
  });
});

describe("links", () => {
  test("http(s), mailto and relative links keep their href and open in a new tab", () => {
    const text = "[docs](https://example.com/a?b=1&c=2) [plain](http://example.org) "
      + "[mail](mailto:someone@example.com) [rel](/static/x.txt) [frag](#top) and https://auto.example/path";
    for (const renderer of [md, mdSanitize]) {
      const links = [...parse(renderer.renderMarkdown(text)).querySelectorAll("a")];
      assert.deepEqual(links.map((a) => a.getAttribute("href")), [
        "https://example.com/a?b=1&c=2", "http://example.org", "mailto:someone@example.com",
        "/static/x.txt", "#top", "https://auto.example/path",
      ]);
      for (const link of links) {
        assert.equal(link.getAttribute("rel"), "noopener noreferrer");
        assert.equal(link.getAttribute("target"), "_blank");
      }
    }
  });

  test("raw HTML links (sanitize mode) get rel and target too", () => {
    const link = parse(mdSanitize.renderMarkdown('<a href="https://x.example" target="_self" rel="opener">x</a>')).querySelector("a");
    assert.equal(link.getAttribute("href"), "https://x.example");
    assert.equal(link.getAttribute("target"), "_blank");
    assert.equal(link.getAttribute("rel"), "noopener noreferrer");
  });

  test("hooks stay inside the renderer's DOMPurify instance", () => {
    // With a window, the renderer makes its own instance: the caller's one is untouched.
    const shared = DOMPurify(window);
    const own = createRenderer({ marked, DOMPurify: shared, hljs, window });
    assert.notEqual(own.purify, shared);
    assert.equal(parse(own.renderMarkdown("[a](https://a.example)")).querySelector("a").getAttribute("target"), "_blank");
    assert.equal(parse(shared.sanitize('<a href="https://a.example">a</a>')).querySelector("a").getAttribute("target"), null);
    // Without one, the given instance is used, and two renderers add their hooks only once.
    const instance = DOMPurify(window);
    const first = createRenderer({ marked, DOMPurify: instance, hljs, window: null });
    const second = createRenderer({ marked, DOMPurify: instance, hljs, window: null });
    assert.equal(first.purify, instance);
    const link = parse(second.renderMarkdown("[a](https://a.example)")).querySelector("a");
    assert.equal(link.getAttribute("rel"), "noopener noreferrer");
  });

  test("the global marked instance is not reconfigured", () => {
    assert.equal(marked.parse("```python\nx\n```\n"), '<pre><code class="language-python">x\n</code></pre>\n');
  });
});

describe("BlockScanner", () => {
  const blocks = (text) => {
    const scanner = new BlockScanner().feed(text);
    const bounds = [...scanner.boundaries, text.length];
    return bounds.slice(0, -1).map((start, i) => text.slice(start, bounds[i + 1]));
  };

  test("splits at blank lines before unindented lines, never inside fences", () => {
    assert.deepEqual(blocks("a\nb\n\nc\n\n  indented\n\nd"), ["a\nb\n\n", "c\n\n  indented\n\n", "d"]);
    assert.deepEqual(blocks("x\n```py\na\n\nb\n```\ny\n\nz"), ["x\n", "```py\na\n\nb\n```\n", "y\n\n", "z"]);
    assert.deepEqual(blocks("- a\n\n  ```\n  q\n\n  r\n  ```\n\nend"), ["- a\n\n  ```\n  q\n\n  r\n  ```\n\n", "end"]);
    assert.deepEqual(blocks("````\n```\n\nx\n````\nafter"), ["````\n```\n\nx\n````\n", "after"]);
  });

  test("incremental feeding gives the same blocks as one pass", () => {
    const incremental = new BlockScanner();
    let sofar = "";
    for (const ch of LONG_REPLY) {
      sofar += ch;
      incremental.feed(sofar);
    }
    assert.deepEqual(incremental.boundaries, new BlockScanner().feed(LONG_REPLY).boundaries);
    assert.ok(incremental.boundaries.length >= 15);
  });
});

function streamInto(renderer, text, tokens, { checkIdentity = true } = {}) {
  const container = document.createElement("div");
  const view = renderer.createStreamView(container, { document });
  let frozen = [];
  let sofar = "";
  let identityChecks = 0;
  for (const token of tokens) {
    sofar += token;
    view.update(sofar);
    const nodes = [...container.childNodes];
    if (checkIdentity) {
      // Completed blocks' nodes are the very same objects, in the same place, every time.
      frozen.forEach((node, i) => assert.equal(nodes[i], node, `frozen node ${i} replaced`));
      identityChecks += frozen.length;
    }
    assert.ok(view.stats.frozenNodes >= frozen.length);
    frozen = nodes.slice(0, view.stats.frozenNodes);
  }
  assert.equal(sofar, text);
  const beforeFinish = frozen;
  view.finish(text);
  const nodes = [...container.childNodes];
  beforeFinish.forEach((node, i) => assert.equal(nodes[i], node, `frozen node ${i} replaced by finish`));
  return { container, view, identityChecks };
}

describe("streaming view", () => {
  for (const [name, tokenize] of [["offline model tokens", offlineTokens], ["whitespace tokens", whitespaceTokens]]) {
    test(`the long reply, ${name}: same text as one shot, frozen blocks, linear cost`, () => {
      const tokens = tokenize(LONG_REPLY);
      assert.ok(LONG_REPLY.length > 1400 && tokens.length > 200);
      const { container, view, identityChecks } = streamInto(md, LONG_REPLY, tokens);
      const oneShot = parse(md.renderMarkdown(LONG_REPLY));
      assert.equal(visible(container), visible(oneShot));
      assert.equal(container.querySelectorAll("pre > code.hljs.language-python span.hljs-keyword").length > 0, true);
      assert.equal(container.querySelectorAll("h3").length, 3);
      assert.equal(container.querySelectorAll("table td").length, 4);
      assert.ok(identityChecks > 1000, `identity checked ${identityChecks} times`);
      assert.ok(view.stats.completedBlocks >= 15, JSON.stringify(view.stats));
      const n = LONG_REPLY.length;
      const quadratic = quadraticCost(tokens);
      assert.ok(view.stats.parsedChars < 5 * n,
        `parsedChars ${view.stats.parsedChars} for ${n} characters (quadratic: ${quadratic})`);
      assert.ok(view.stats.parsedChars * 20 < quadratic);
      assert.ok(view.stats.parses < tokens.length / 2, JSON.stringify(view.stats));
    });
  }

  test("the offline reply, one character at a time", () => {
    const { container, view } = streamInto(md, OFFLINE_REPLY, [...OFFLINE_REPLY]);
    assert.equal(visible(container), visible(parse(md.renderMarkdown(OFFLINE_REPLY))));
    assert.ok(view.stats.parsedChars < 10 * OFFLINE_REPLY.length, JSON.stringify(view.stats));
  });

  test("every intermediate state matches a fresh render of the same text", () => {
    const container = document.createElement("div");
    const view = md.createStreamView(container, { document });
    let sofar = "";
    for (const token of offlineTokens(LONG_REPLY)) {
      sofar += token;
      view.update(sofar);
      const fresh = document.createElement("div");
      md.createStreamView(fresh, { document }).update(sofar);
      assert.equal(visible(container), visible(fresh), `after ${JSON.stringify(sofar.slice(-40))}`);
    }
  });

  test("an open code block is shown as code while it streams, never re-highlighted whole", () => {
    const lines = Array.from({ length: 300 }, (_, i) => `    total = total + values[${i}]  # step ${i}`);
    const text = `Here is the loop:\n\n\`\`\`python\ndef run(values):\n    total = 0\n${lines.join("\n")}\n    return total\n\`\`\`\n\nDone.`;
    const container = document.createElement("div");
    const view = md.createStreamView(container, { document });
    let sofar = "";
    let checked = false;
    for (const token of offlineTokens(text)) {
      sofar += token;
      view.update(sofar);
      if (!checked && sofar.endsWith("# step 150")) {
        checked = true;
        const code = container.querySelector("pre > code.hljs.language-python");
        assert.ok(code);
        assert.ok(code.querySelector("span.hljs-keyword"));
        assert.ok(code.textContent.endsWith("# step 150"));
        assert.ok(!textWithoutButtons(container).includes("`"));
      }
    }
    view.finish(sofar);
    assert.ok(checked);
    assert.equal(visible(container), visible(parse(md.renderMarkdown(text))));
    const quadratic = quadraticCost(offlineTokens(text));
    assert.ok(view.stats.parsedChars < 12 * text.length, JSON.stringify(view.stats));
    assert.ok(view.stats.parsedChars * 50 < quadratic, `${view.stats.parsedChars} vs ${quadratic}`);
  });

  test("stopping inside a code block renders the partial code as a block", () => {
    const container = document.createElement("div");
    const view = md.createStreamView(container, { document });
    view.update("Intro\n\n```python\ndef f(x):\n    ret");
    assert.equal(container.querySelector("pre > code").textContent.trim(), "def f(x):\n    ret");
    view.update("Intro\n\n```python\ndef f(x):\n    return x\n``");
    assert.equal(container.querySelector("pre > code").textContent.trim(), "def f(x):\n    return x");
    view.finish("Intro\n\n```python\ndef f(x):\n    return x");
    const code = container.querySelector("pre > code.language-python");
    assert.equal(code.textContent, "def f(x):\n    return x");
    assert.equal(container.querySelectorAll("pre").length, 1);
  });

  test("a text that does not extend the previous one starts again", () => {
    const container = document.createElement("div");
    const view = md.createStreamView(container, { document });
    view.update("First paragraph.\n\nSecond");
    view.update("Other text entirely.");
    assert.equal(visible(container), "Other text entirely.");
    view.finish("Other text entirely.");
    view.finish("Other text entirely.");
    assert.equal(visible(container), "Other text entirely.");
  });

  test("lists split by blank lines may become separate lists, with the same text", () => {
    const text = "1. one\n\n2. two\n\n3. three";
    const { container } = streamInto(md, text, whitespaceTokens(text));
    assert.equal(visible(container), visible(parse(md.renderMarkdown(text))));
    assert.deepEqual([...container.querySelectorAll("ol")].map((ol) => ol.getAttribute("start")), [null, "2", "3"]);
  });
});

describe("copy buttons", () => {
  function setup(clipboard) {
    const root = document.createElement("div");
    document.body.append(root);
    root.innerHTML = md.renderMarkdown("Text\n\n```python\nprint('hi')\nx = 1 < 2\n```\n\n```\nsecond\n```");
    const detach = attachCopyHandler(root, clipboard, { resetMs: 20 });
    return { root, detach };
  }
  const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

  test("copies exactly the code text and says so briefly", async () => {
    const calls = [];
    const clipboard = { writeText: async (text) => { calls.push(text); } };
    const { root, detach } = setup(clipboard);
    const [first, second] = root.querySelectorAll("button.copy");
    first.click();
    await settle();
    assert.deepEqual(calls, ["print('hi')\nx = 1 < 2"]);
    assert.equal(first.textContent, "Copied");
    assert.ok(first.classList.contains("copied"));
    assert.equal(second.textContent, "Copy");
    second.click();
    await settle();
    assert.deepEqual(calls, ["print('hi')\nx = 1 < 2", "second"]);
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(first.textContent, "Copy");
    assert.ok(!first.classList.contains("copied"));
    root.querySelector("p").click(); // not a copy button: nothing happens
    await settle();
    assert.equal(calls.length, 2);
    detach();
    first.click();
    await settle();
    assert.equal(calls.length, 2);
    root.remove();
  });

  test("one delegated listener also serves code blocks added later", async () => {
    const calls = [];
    const root = document.createElement("div");
    const detach = attachCopyHandler(root, { writeText: async (text) => { calls.push(text); } }, { resetMs: 5 });
    const view = md.createStreamView(root, { document });
    view.update("```js\nconst a = 1;\nconst b");
    root.querySelector("button.copy").click();
    await settle();
    view.finish("```js\nconst a = 1;\nconst b = 2;\n```");
    root.querySelector("button.copy").click();
    await settle();
    assert.equal(calls.at(-1), "const a = 1;\nconst b = 2;");
    assert.equal(calls.length, 2);
    detach();
    await new Promise((resolve) => setTimeout(resolve, 10));
  });

  test("a failing clipboard says so", async () => {
    const clipboard = { writeText: async () => { throw new Error("denied"); } };
    const { root, detach } = setup(clipboard);
    const button = root.querySelector("button.copy");
    button.click();
    await settle();
    assert.equal(button.textContent, "Copy failed");
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(button.textContent, "Copy");
    detach();
    root.remove();
  });
});
