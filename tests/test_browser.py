"""The chat page in a real browser (headless Chromium through Playwright) against a real
daphne process and the stand-in OpenAI server: what a user sees while a reply streams.

Each test starts one daphne server; the stand-in paces its replies so that there is a
"mid-stream" to act on. Playwright's sync API keeps an event loop running in the test's
thread, so Django's async-unsafe check is switched off for this module (for the test
process only: the daphne servers keep it on).
"""

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright

from streaming.models import Message
from tests.standin import Reply, StandinServer

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 10_000

WORDS = [
    "streaming", "replies", "arrive", "token", "by", "token", "while", "the", "reader",
    "follows", "along", "and", "every", "piece", "lands", "exactly", "once", "in", "the",
    "right", "order", "so", "nothing", "is", "lost", "or", "repeated", "when", "the",
    "connection", "drops", "or", "the", "page", "reloads", "halfway", "through", "a", "long",
    "answer",
]  # fmt: skip

# Records every Content-Security-Policy violation: inline code that the sanitizer let
# through would be blocked by the policy and show up here even though no dialog opens.
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""

# A WebSocket that fails the way a blocked one does: error, then close 1006, never open.
BLOCK_WEBSOCKET = """
window.__webSocketAttempts = 0;
window.WebSocket = class BlockedWebSocket extends EventTarget {
  static CONNECTING = 0; static OPEN = 1; static CLOSING = 2; static CLOSED = 3;
  constructor(url) {
    super();
    window.__webSocketAttempts += 1;
    this.url = String(url);
    this.readyState = 0;
    this.onopen = this.onmessage = this.onerror = this.onclose = null;
    setTimeout(() => {
      this.readyState = 3;
      const error = new Event("error");
      this.dispatchEvent(error);
      this.onerror?.(error);
      const close = new CloseEvent("close", { code: 1006, wasClean: false });
      this.dispatchEvent(close);
      this.onclose?.(close);
    }, 0);
  }
  send() { throw new DOMException("The WebSocket is not open.", "InvalidStateError"); }
  close() {}
};
"""


def sentence(n: int, offset: int = 0) -> str:
    """n plain words (no markdown meaning), so rendered text equals the source exactly."""
    words = [WORDS[(offset + i) % len(WORDS)] for i in range(n)]
    words[0] = words[0].capitalize()
    return " ".join(words) + "."


def stored(run_id: str) -> Message:
    return Message.objects.get(pk=run_id)


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.fixture(scope="module", autouse=True)
def _orm_beside_playwright() -> Iterator[None]:
    """Module-scoped, so that it outlasts the database flush after each test."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Callable[[], BrowserContext]]:
    """Fresh browser contexts (each its own cookie jar, i.e. its own guest), closed after."""
    contexts: list[BrowserContext] = []

    def make() -> BrowserContext:
        context = browser.new_context()
        context.set_default_timeout(TIMEOUT_MS)
        context.add_init_script(RECORD_CSP_VIOLATIONS)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def context(new_context: Callable[[], BrowserContext]) -> BrowserContext:
    return new_context()


@pytest.fixture
def site(daphne_server, standin: StandinServer) -> str:
    """The base URL of a daphne server whose agent talks to the stand-in."""
    server = daphne_server(
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=standin.base_url,
        AGENT_MODEL="gpt-test",
        DJANGO_ALLOW_ASYNC_UNSAFE="",  # the product itself keeps Django's check
    )
    return server.url


def open_chat(page: Page, url: str) -> None:
    response = page.goto(url)
    assert response is not None and response.status == 200
    expect(page.locator("#status")).to_have_attribute("data-state", "open")


def send(page: Page, text: str) -> Locator:
    """Type `text` in the Message box, press Enter; return the new reply's list item."""
    before = page.locator("li.message.assistant").count()
    box = page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")
    reply = page.locator("li.message.assistant").nth(before)
    expect(reply).to_have_attribute("data-run-id", re.compile(r"^[0-9a-f-]{36}$"))
    return reply


def text_length(reply: Locator) -> int:
    return reply.locator(".body").evaluate("(body) => body.innerText.length")


def wait_streaming_past(page: Page, reply: Locator, length: int) -> int:
    """Wait until the reply shows more than `length` characters while still streaming."""
    page.wait_for_function(
        """([item, length]) => item.dataset.status === "streaming"
             && item.querySelector(".body").innerText.length > length""",
        arg=[reply.element_handle(), length],
    )
    return text_length(reply)


def metric(reply: Locator, name: str) -> str | None:
    return reply.evaluate(
        """(item, name) => {
             const dt = [...item.querySelectorAll(".metrics dt")].find((d) => d.textContent === name);
             return dt?.nextElementSibling?.textContent ?? null;
           }""",
        name,
    )


def visible_text(reply: Locator) -> str:
    return reply.locator(".body").evaluate("(body) => body.innerText")


def finish(reply: Locator, status: str = "completed") -> str:
    expect(reply).to_have_attribute("data-status", status)
    return reply.get_attribute("data-run-id") or ""


def no_csp_violations(page: Page) -> list[Any]:
    return page.evaluate("window.__cspViolations")


def wait_watching(page: Page, frames: list[str]) -> None:
    """Wait until the server confirmed (a `watching` frame) that the tab follows its thread."""
    deadline = time.monotonic() + 5
    while not any('"watching"' in frame for frame in frames):
        assert time.monotonic() < deadline, frames
        page.wait_for_timeout(20)


# 1. Send, watch it grow, see the final markdown and metrics; Shift+Enter is a newline.


def test_a_reply_streams_in_and_renders_as_markdown(
    site: str, standin: StandinServer, context: BrowserContext
) -> None:
    text = (
        "### Title\n\n"
        f"{sentence(30)}\n\n"
        "```python\n"
        "def greet(name):\n"
        '    return f"Hello, {name}!"\n'
        "```\n\n"
        f"{sentence(30, 7)}"
    )
    standin.script(Reply(text=text, tps=50))
    page = context.new_page()
    open_chat(page, site)

    box = page.get_by_label("Message", exact=True)
    box.type("First line")
    box.press("Shift+Enter")
    box.type("second line")
    assert box.input_value() == "First line\nsecond line"
    assert page.locator("li.message").count() == 0  # Shift+Enter did not send

    box.press("Enter")
    user = page.locator("li.message.user")
    expect(user).to_have_count(1)
    expect(box).to_have_value("")
    reply = page.locator("li.message.assistant")
    expect(reply).to_have_count(1)

    # The text grows while the reply is streaming.
    first = wait_streaming_past(page, reply, 0)
    second = wait_streaming_past(page, reply, first)
    assert second > first
    expect(page.get_by_role("button", name="Stop")).to_be_visible()

    run_id = finish(reply)
    body = reply.locator(".body")
    expect(body.locator("h3")).to_have_text("Title")
    code = body.locator("pre code.hljs")
    expect(code).to_have_count(1)
    expect(code).to_have_class(re.compile(r"\blanguage-python\b"))
    assert code.locator("span[class^='hljs-']").count() >= 2  # `def`, the string...
    assert code.inner_text() == 'def greet(name):\n    return f"Hello, {name}!"'
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    expect(page.get_by_role("button", name="Send")).to_be_enabled()

    message = stored(run_id)
    assert message.status == "completed" and message.content == text
    assert message.token_count > 0
    assert metric(reply, "Tokens") == str(message.token_count)
    assert metric(reply, "Status") == "completed"
    question = Message.objects.get(thread_id=message.thread_id, role="user")
    assert question.content == "First line\nsecond line"
    assert page.url == f"{site}/t/{message.thread_id}"
    assert no_csp_violations(page) == []


# 2. Stop mid-stream.


def test_stop_ends_the_reply_and_keeps_what_was_shown(
    site: str, standin: StandinServer, context: BrowserContext
) -> None:
    text = sentence(120)
    standin.script(Reply(text=text, tps=40))
    page = context.new_page()
    open_chat(page, site)

    reply = send(page, "Tell me a long story")
    wait_streaming_past(page, reply, 40)
    page.get_by_role("button", name="Stop").click()
    run_id = finish(reply, "stopped")

    request = standin.wait_closed_early(0, 5)
    assert 0 < request.tokens_sent < len(text.split())
    shown = visible_text(reply)
    message = stored(run_id)
    assert message.status == "stopped"
    assert shown == message.content  # exactly what was kept, no more, no less
    assert text.startswith(shown) and 40 < len(shown) < len(text)
    assert metric(reply, "Status") == "stopped"
    assert metric(reply, "Tokens") == str(message.token_count)
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    expect(page.get_by_role("button", name="Send")).to_be_enabled()


# 3. Reload mid-stream.


def test_a_reload_mid_stream_resumes_the_same_reply(
    site: str, standin: StandinServer, context: BrowserContext
) -> None:
    text = sentence(140)
    standin.script(Reply(text=text, tps=50))
    page = context.new_page()
    open_chat(page, site)

    reply = send(page, "Keep talking")
    run_id = reply.get_attribute("data-run-id")
    wait_streaming_past(page, reply, 30)
    page.reload()

    reply = page.locator(f"li.message.assistant[data-run-id='{run_id}']")
    expect(reply).to_have_count(1)
    # The page picked the running reply up again: it keeps growing after the reload.
    wait_streaming_past(page, reply, text_length(reply))
    finish(reply)

    message = stored(run_id)
    assert message.status == "completed" and message.content == text
    assert visible_text(reply) == text
    expect(page.locator("li.message.assistant")).to_have_count(1)
    expect(page.locator("li.message.user")).to_have_count(1)
    assert len(standin.requests) == 1  # the reload did not start another run
    assert metric(reply, "Tokens") == str(message.token_count)


# 4. Fallbacks: WebSocket blocked → SSE; SSE blocked too → polling.


def test_without_websocket_the_page_falls_back_to_sse(
    site: str, standin: StandinServer, context: BrowserContext
) -> None:
    text = sentence(60)
    standin.script(Reply(text=text, tps=60))
    context.add_init_script(BLOCK_WEBSOCKET)
    page = context.new_page()
    open_chat(page, site)
    status = page.locator("#status")
    expect(status).to_have_attribute("data-transport", "sse")
    expect(status).to_have_text(re.compile(r"^sse · open"))
    assert page.evaluate("window.__webSocketAttempts") >= 1

    reply = send(page, "Over SSE, please")
    wait_streaming_past(page, reply, 0)
    run_id = finish(reply)
    assert visible_text(reply) == text == stored(run_id).content
    expect(status).to_have_attribute("data-transport", "sse")


def test_without_websocket_and_sse_the_page_falls_back_to_polling(
    site: str, standin: StandinServer, context: BrowserContext
) -> None:
    text = sentence(60)
    standin.script(Reply(text=text, tps=60))
    context.add_init_script(BLOCK_WEBSOCKET)
    # A proxy that refuses event streams: the SSE endpoint answers 503.
    sse_requests: list[str] = []

    def refuse(route: Any) -> None:
        sse_requests.append(route.request.url)
        route.fulfill(status=503, content_type="text/plain", body="no event streams here")

    context.route(re.compile(r"/api/runs/[^/]+/events"), refuse)
    page = context.new_page()
    open_chat(page, site)

    reply = send(page, "Over polling, please")
    status = page.locator("#status")
    expect(status).to_have_attribute("data-transport", "poll")
    expect(status).to_have_text(re.compile(r"^poll · open"))
    run_id = finish(reply)
    assert visible_text(reply) == text == stored(run_id).content
    assert sse_requests  # SSE was tried before polling
    assert page.evaluate("window.__webSocketAttempts") >= 1


def test_when_sse_connections_fail_the_page_falls_back_to_polling(
    site: str, standin: StandinServer, context: BrowserContext
) -> None:
    text = sentence(30)
    standin.script(Reply(text=text, tps=60))
    context.add_init_script(BLOCK_WEBSOCKET)
    # A network that drops event-stream connections (no HTTP answer at all).
    context.route(re.compile(r"/api/runs/[^/]+/events"), lambda route: route.abort())
    page = context.new_page()
    open_chat(page, site)

    reply = send(page, "Over polling, please")
    run_id = reply.get_attribute("data-run-id")
    standin.wait_done(0, 5)  # the reply is complete on the server
    status = page.locator("#status")
    expect(status).to_have_attribute("data-transport", "poll", timeout=4000)
    expect(reply).to_have_attribute("data-status", "completed", timeout=3000)
    assert visible_text(reply) == text == stored(run_id).content


# 5. Model output cannot run code in the page.

XSS_TEXT = (
    "Plain words first. <script>alert(1)</script>\n\n"
    "<img src=x onerror=alert(1)>\n\n"
    "A [click](javascript:alert(1)) and [caps](JaVaScRiPt:alert(3)) link.\n\n"
    '<a href="javascript:alert(2)">x</a>\n\n'
    "![pic](javascript:alert(4)) and <svg onload=alert(5)></svg> and "
    '<iframe src="javascript:alert(6)"></iframe>\n\n'
    "The end of the reply."
)

INERT_CHECK = """
(list) => ({
  scripts: list.querySelectorAll("script, iframe, object, embed, svg").length,
  handlers: [...list.querySelectorAll("*")].flatMap((el) =>
    [...el.attributes].filter((a) => /^on/i.test(a.name)).map((a) => `${el.tagName} ${a.name}`)),
  jsUrls: [...list.querySelectorAll("[href], [src], [action], [formaction]")].flatMap((el) =>
    ["href", "src", "action", "formaction"].map((n) => el.getAttribute(n) ?? "")
      .filter((v) => /^\\s*javascript:/i.test(v))),
})
"""


def assert_inert(page: Page) -> None:
    found = page.locator("#messages").evaluate(INERT_CHECK)
    assert found == {"scripts": 0, "handlers": [], "jsUrls": []}


def test_html_and_javascript_links_in_a_reply_stay_inert(
    site: str, standin: StandinServer, context: BrowserContext
) -> None:
    standin.script(Reply(text=XSS_TEXT, tps=40))
    page = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    response = page.goto(site)
    assert response is not None
    policy = response.headers["content-security-policy"]
    script_src = next(p.strip() for p in policy.split(";") if p.strip().startswith("script-src"))
    assert script_src == "script-src 'self'"
    expect(page.locator("#status")).to_have_attribute("data-state", "open")

    reply = send(page, '<img src=x onerror=alert("question")> and <script>alert(7)</script>')
    wait_streaming_past(page, reply, 0)
    assert_inert(page)  # mid-stream too
    run_id = finish(reply)
    assert_inert(page)
    shown = visible_text(reply)
    # The raw HTML is shown as text, the links keep their text but lose their target.
    assert "<script>alert(1)</script>" in shown
    assert "<img src=x onerror=alert(1)>" in shown
    assert '<a href="javascript:alert(2)">x</a>' in shown
    assert "click" in shown and "The end of the reply." in shown
    assert stored(run_id).content == XSS_TEXT

    # History rendered by the server and then by the page is just as inert (that it shows
    # its text at all is test_a_reloaded_conversation_shows_its_history).
    page.reload()
    expect(page.locator("#status")).to_have_attribute("data-state", "open")
    expect(page.locator("li.message.assistant")).to_have_attribute("data-status", "completed")
    assert_inert(page)
    page.wait_for_timeout(200)  # a late onerror/onload would fire by now
    assert dialogs == []
    assert no_csp_violations(page) == []


def test_a_reloaded_conversation_shows_its_history(
    site: str, standin: StandinServer, context: BrowserContext
) -> None:
    words = sentence(12)
    text = f"### Title\n\n{words}\n\n```python\nprint('hi')\n```\n\n{XSS_TEXT}"
    standin.script(Reply(text=text, tps=0))
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    open_chat(page, site)
    run_id = finish(send(page, "Show me the history"))

    response = page.reload()
    assert response is not None and words in response.text()  # the server sent it...
    expect(page.locator("#status")).to_have_attribute("data-state", "open")
    reply = page.locator(f"li.message.assistant[data-run-id='{run_id}']")
    assert reply.get_attribute("data-status") == "completed"
    assert metric(reply, "Tokens") == str(stored(run_id).token_count)
    # ...and the page shows it, rendered as markdown.
    assert squash(visible_text(page.locator("li.message.user"))) == "Show me the history"
    shown = visible_text(reply)
    assert words in shown and "<script>alert(1)</script>" in shown
    assert reply.locator(".body h3").inner_text() == "Title"
    assert reply.locator(".body pre code.hljs span[class^='hljs-']").count() >= 1
    assert_inert(page)
    page.wait_for_timeout(200)
    assert dialogs == []
    assert no_csp_violations(page) == []


# 6. Two tabs on one thread.


def test_a_second_tab_on_the_thread_follows_a_reply_live(
    site: str, standin: StandinServer, context: BrowserContext
) -> None:
    later = sentence(90, 3)
    standin.script(Reply(text="Hello there.", tps=0), Reply(text=later, tps=50))
    tab_a = context.new_page()
    open_chat(tab_a, site)
    first = send(tab_a, "Hi")
    thread_id = stored(finish(first)).thread_id
    url = f"{site}/t/{thread_id}"
    assert tab_a.url == url

    frames: list[str] = []
    tab_b = context.new_page()
    tab_b.on("websocket", lambda ws: ws.on("framereceived", lambda data: frames.append(str(data))))
    open_chat(tab_b, url)
    expect(tab_b.locator("li.message.assistant")).to_have_count(1)
    wait_watching(tab_b, frames)

    tab_a.bring_to_front()
    reply_a = send(tab_a, "And now a longer one")
    run_id = reply_a.get_attribute("data-run-id")
    reply_b = tab_b.locator(f"li.message.assistant[data-run-id='{run_id}']")
    expect(reply_b).to_have_count(1)
    # Tab B shows it streaming live, not just the end result.
    grown = wait_streaming_past(tab_b, reply_b, 0)
    wait_streaming_past(tab_b, reply_b, grown)

    finish(reply_a)
    finish(reply_b)
    assert visible_text(reply_b) == visible_text(reply_a) == later == stored(run_id).content
    expect(tab_b.locator("li.message.assistant")).to_have_count(2)
    assert metric(reply_b, "Tokens") == metric(reply_a, "Tokens")


def test_a_second_tab_shows_the_question_as_well_as_the_reply(
    site: str, standin: StandinServer, context: BrowserContext
) -> None:
    standin.script(Reply(text=sentence(20), tps=50))
    tab_a = context.new_page()
    open_chat(tab_a, site)
    thread_id = tab_a.evaluate(
        """async () => {
             const token = document.querySelector("input[name=csrfmiddlewaretoken]").value;
             const r = await fetch("/api/threads", { method: "POST", body: "{}",
               headers: { "Content-Type": "application/json", "X-CSRFToken": token } });
             return (await r.json()).id;
           }"""
    )
    url = f"{site}/t/{thread_id}"
    open_chat(tab_a, url)
    frames: list[str] = []
    tab_b = context.new_page()
    tab_b.on("websocket", lambda ws: ws.on("framereceived", lambda data: frames.append(str(data))))
    open_chat(tab_b, url)
    wait_watching(tab_b, frames)

    tab_a.bring_to_front()
    run_id = finish(send(tab_a, "A question from tab A"))
    finish(tab_b.locator(f"li.message.assistant[data-run-id='{run_id}']"))
    questions = tab_b.locator("li.message.user")
    assert questions.count() == 1 and visible_text(questions) == "A question from tab A"


# 7. Another guest cannot open the thread.


# The sidebar.


def test_a_new_conversation_appears_in_the_sidebar_at_once_and_the_active_one_moves_up(
    site: str, standin: StandinServer, context: BrowserContext
) -> None:
    standin.script(*[Reply(text=f"Answer {i}.", tps=0) for i in range(3)])
    page = context.new_page()
    open_chat(page, site)
    threads = page.get_by_role("complementary", name="Conversations").get_by_role("listitem")
    expect(threads).to_have_text(["No conversations yet."])
    empty = page.get_by_text("A new conversation. Type a message below")
    expect(empty).to_be_visible()  # a new chat says what to do
    finish(send(page, "First question   about cats"))
    expect(empty).to_be_hidden()
    expect(threads).to_have_count(1, timeout=1000)  # without a reload, within a second
    expect(threads.first.get_by_role("link")).to_have_text("First question about cats", timeout=1000)
    expect(threads.first).to_have_attribute("aria-current", "page")
    expect(threads.first.get_by_role("button", name="Rename First question about cats")).to_be_visible()

    page.get_by_role("link", name="New chat").click()
    expect(page.locator("#status")).to_have_attribute("data-state", "open")
    finish(send(page, "Second one"))
    expect(threads.get_by_role("link")).to_have_text(["Second one", "First question about cats"])

    threads.get_by_role("link", name="First question about cats").click()
    expect(page.locator("#status")).to_have_attribute("data-state", "open")
    finish(send(page, "Back to cats"))
    expect(threads.get_by_role("link")).to_have_text(["First question about cats", "Second one"])
    expect(threads.first).to_have_attribute("aria-current", "page")


def test_a_conversation_started_in_one_tab_appears_in_the_others_sidebar(
    site: str, standin: StandinServer, context: BrowserContext
) -> None:
    standin.script(Reply(text="Answer.", tps=0))
    tab_a, tab_b = context.new_page(), context.new_page()
    open_chat(tab_a, site)
    open_chat(tab_b, site)
    tab_a.bring_to_front()
    finish(send(tab_a, "Started in tab A"))
    threads_b = tab_b.get_by_role("complementary", name="Conversations").get_by_role("listitem").get_by_role("link")
    expect(threads_b).to_have_text(["Started in tab A"], timeout=1000)
    expect(tab_b.locator("li.message")).to_have_count(0)  # tab B stays on its own new chat


# Everyday things: dark mode, Escape, drafts.


def background(page: Page) -> str:
    return page.evaluate("getComputedStyle(document.body).backgroundColor")


def test_dark_mode_follows_the_system_and_the_toggle_is_remembered(site: str, context: BrowserContext) -> None:
    page = context.new_page()
    page.emulate_media(color_scheme="dark")
    open_chat(page, site)
    assert background(page) == "rgb(15, 17, 21)"
    toggle = page.get_by_role("button", name="Dark mode")
    expect(toggle).to_have_attribute("aria-pressed", "true")
    toggle.click()  # the reader prefers light, whatever the system says
    expect(toggle).to_have_attribute("aria-pressed", "false")
    assert background(page) == "rgb(247, 247, 248)"
    page.reload()
    expect(page.locator("#status")).to_have_attribute("data-state", "open")
    assert background(page) == "rgb(247, 247, 248)"
    assert page.locator("link[data-code-theme='light']").get_attribute("media") == "all"
    assert page.locator("link[data-code-theme='dark']").get_attribute("media") == "not all"
    assert no_csp_violations(page) == []


def test_escape_stops_a_streaming_reply_and_the_draft_survives_a_reload(
    site: str, standin: StandinServer, context: BrowserContext
) -> None:
    text = sentence(120)
    standin.script(Reply(text=text, tps=40))
    page = context.new_page()
    open_chat(page, site)
    reply = send(page, "Tell me a long story")
    wait_streaming_past(page, reply, 20)
    page.keyboard.press("Escape")
    run_id = finish(reply, "stopped")
    assert visible_text(reply) == stored(run_id).content

    page.get_by_label("Message", exact=True).fill("half a thought, to finish later")
    page.reload()
    expect(page.locator("#status")).to_have_attribute("data-state", "open")
    expect(page.get_by_label("Message", exact=True)).to_have_value("half a thought, to finish later")
    page.get_by_role("link", name="New chat").click()
    expect(page.get_by_label("Message", exact=True)).to_have_value("")  # a draft per conversation


def test_another_guest_cannot_see_the_thread(
    site: str, standin: StandinServer, new_context: Callable[[], BrowserContext]
) -> None:
    answer = "The secret answer is forty two."
    standin.script(Reply(text=answer, tps=0))
    owner = new_context().new_page()
    open_chat(owner, site)
    reply = send(owner, "Tell me the secret")
    run_id = finish(reply)
    thread_id = stored(run_id).thread_id

    stranger = new_context().new_page()
    response = stranger.goto(f"{site}/t/{thread_id}")
    assert response is not None and response.status == 404
    html = stranger.content()
    assert "secret" not in html.lower() and "forty two" not in html
    assert str(run_id) not in html
    # Nor can the stranger's browser fetch the reply through the API.
    stranger.goto(site)
    for path in (f"/api/runs/{run_id}/poll?after=0&wait=0", f"/api/threads/{thread_id}"):
        status, body = stranger.evaluate(
            """async (path) => {
                 const r = await fetch(path, { headers: { Accept: "application/json" } });
                 return [r.status, await r.text()];
               }""",
            path,
        )
        assert status == 404, (path, status, body)
        assert "forty two" not in body


# The /chatkit/ page. ChatKit's own script comes from OpenAI's CDN, which tests cannot
# reach: the browser gets a stand-in for it that drives the page's options the way
# ChatKit does (through `api.fetch` or `api.getClientSecret`).

CHATKIT_SCRIPT = "https://cdn.platform.openai.com/deployments/chatkit/chatkit.js"
CHATKIT_STANDIN = """
customElements.define("openai-chatkit", class extends HTMLElement {
  setOptions(options) {
    const api = options.api;
    window.__chatkit = { url: api.url, domainKey: api.domainKey, attachments: options.composer.attachments.enabled };
    (async () => {
      if (api.getClientSecret) {
        const first = await api.getClientSecret(null);
        const second = await api.getClientSecret(first);
        window.__chatkit.secrets = [first, second];
        return;
      }
      const body = { type: "threads.create", params: { input: {
        content: [{ type: "input_text", text: "Hello from ChatKit" }], attachments: [], inference_options: {} } } };
      const response = await api.fetch(api.url, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      window.__chatkit.status = response.status;
      window.__chatkit.body = await response.text();
    })().catch((error) => { window.__chatkit.error = String(error); });
  }
});
"""


def chatkit_run(context: BrowserContext, url: str, mode: str, done: str) -> dict[str, Any]:
    """Open /chatkit/ with the stand-in for ChatKit's script; what it did, once `done`
    (or an error) is recorded."""
    page = context.new_page()
    page.route(CHATKIT_SCRIPT, lambda route: route.fulfill(
        status=200, content_type="text/javascript", body=CHATKIT_STANDIN
    ))
    assert page.goto(f"{url}/chatkit/").status == 200
    expect(page.locator("#chatkit-mode")).to_contain_text(mode)
    page.wait_for_function(f"() => window.__chatkit && (window.__chatkit.{done} || window.__chatkit.error)")
    result = page.evaluate("() => window.__chatkit")
    assert result.get("error") is None
    assert page.evaluate("() => window.__cspViolations") == []
    return result


def test_chatkit_page_drives_this_servers_chatkit_endpoint(context, site, standin) -> None:
    text = sentence(12)
    standin.script(Reply(text=text))
    result = chatkit_run(context, site, "this server's conversations", "body")
    assert result["status"] == 200
    assert result["url"] == "/chatkit" and result["domainKey"] == "domain_pk_localhost_dev"
    assert result["attachments"] is False
    events = [json.loads(line[6:]) for line in result["body"].split("\n") if line.startswith("data: ")]
    deltas = [e["update"]["delta"] for e in events if e["type"] == "thread.item.updated" and "delta" in e["update"]]
    assert "".join(deltas) == text
    reply = Message.objects.get(role="assistant")
    assert (reply.content, reply.status, reply.thread.title) == (text, "completed", "Hello from ChatKit")


def test_chatkit_page_on_a_hosted_workflow_gets_and_refreshes_secrets(daphne_server, context, standin) -> None:
    server = daphne_server(
        OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=standin.base_url, CHATKIT_WORKFLOW_ID="wf_browser",
        DJANGO_ALLOW_ASYNC_UNSAFE="",
    )
    result = chatkit_run(context, server.url, "OpenAI-hosted workflow", "secrets")
    first, second = result["secrets"]
    assert first.startswith("ek_") and second.startswith("ek_") and first != second
    creates = [r for r in standin.requests if r.path == "/v1/chatkit/sessions"]
    assert [r.json["workflow"] for r in creates] == [{"id": "wf_browser"}] * 2
    assert len({r.json["user"] for r in creates}) == 1
    assert [r for r in standin.requests if r.path.endswith("/cancel")]


def test_chatkit_page_says_so_when_chatkits_script_cannot_load(context, site) -> None:
    page = context.new_page()
    page.route(CHATKIT_SCRIPT, lambda route: route.abort())
    assert page.goto(f"{site}/chatkit/").status == 200
    expect(page.locator("#chatkit-unavailable")).to_be_visible()
    expect(page.locator("#chatkit-unavailable")).to_contain_text("could not be loaded from OpenAI")
    expect(page.locator("#chatkit")).to_be_hidden()
