"""The chat page's accessibility in a real browser (headless Chromium through Playwright,
against a real daphne process and the stand-in OpenAI server): axe-core finds no serious
or critical violations in any state of the page, theme or viewport; the message list
follows a streaming reply only while the reader is at its bottom; screen readers hear a
reply start and end, not each token; the header says who a new visitor has become.

The fixtures and helpers are test_browser.py's (one browser per module, a context per
test, `site` a daphne server talking to the stand-in).
"""

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from streaming.models import Message
from tests import test_browser
from tests.standin import Reply, StandinServer
from tests.test_browser import (
    finish,
    no_csp_violations,
    open_chat,
    send,
    sentence,
    text_length,
    wait_streaming_past,
)

pytestmark = pytest.mark.django_db(transaction=True)

# test_browser.py's fixtures, by the names the tests here ask for.
_orm_beside_playwright = test_browser._orm_beside_playwright
browser = test_browser.browser
new_context = test_browser.new_context
context = test_browser.context
site = test_browser.site

AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
# axe is served to the page from the page's own origin (a route no server has), so the page
# keeps its real Content-Security-Policy (script-src 'self') while it is checked.
AXE_PATH = "/__tests__/axe.min.js"

VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "mobile": {"width": 390, "height": 844}}

RUN_AXE = """async () => {
  const { violations } = await axe.run(document, { resultTypes: ["violations"] });
  return violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map((n) => ({ target: n.target.join(" "), summary: n.failureSummary })),
  }));
}"""

# The reply the axe checks read: markdown of every kind a model writes (a code block, a
# table, a link, a quote, lists), then plain sentences that keep it streaming a while.
MARKDOWN = (
    "### A heading\n\n"
    "Some **bold**, some *emphasis*, `inline code` and [a link](https://example.com/docs).\n\n"
    "```python\n"
    "# A comment, in the code theme's muted colour\n"
    "def greet(name: str) -> str:\n"
    '    """Say hello."""\n'
    '    return f"Hello, {name}!"  # 42\n'
    "\n"
    "print(greet('a name long enough that this line is wider than a phone or a desktop reply'), sorted([3, 1, 2]))\n"
    "```\n\n"
    "```html\n"
    '<a href="/docs" class="link">Docs</a>\n'
    "```\n\n"
    "```diff\n"
    "- removed = True\n"
    "+ added = None\n"
    "```\n\n"
    "```markdown\n"
    "# Section\n"
    "- item\n"
    "```\n\n"
    "| Variable | Meaning |\n"
    "| --- | --- |\n"
    "| `AGENT_MODEL` | the model to use |\n"
    "| `OPENAI_BASE_URL` | another endpoint |\n\n"
    "> A quoted line.\n\n"
    "1. First\n2. Second\n\n"
    "- a point\n- another\n\n"
)


def serious_violations(page: Page) -> list[dict[str, Any]]:
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.route(
            f"**{AXE_PATH}", lambda route: route.fulfill(path=AXE, content_type="text/javascript")
        )
        page.add_script_tag(url=AXE_PATH)
    found = page.evaluate(RUN_AXE)
    return [v for v in found if v["impact"] in ("serious", "critical")]


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']}")
        lines += [f"    {n['target']}: {n['summary']}" for n in v["nodes"]]
    return "\n".join(lines)


def assert_accessible(page: Page, state: str) -> None:
    violations = serious_violations(page)
    assert violations == [], f"axe, {state}:\n{describe(violations)}"


def set_theme(page: Page, theme: str) -> None:
    """The system says light; for dark the reader presses the "Dark mode" toggle."""
    toggle = page.get_by_role("button", name="Dark mode")
    if theme == "dark":
        toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true" if theme == "dark" else "false")
    expect(page.locator("html")).to_have_attribute("data-theme", theme)


# axe-core: the page in every state, in both themes, on a desktop and a phone.


@pytest.mark.parametrize("viewport", VIEWPORTS)
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_axe_finds_nothing_serious_empty_streaming_and_finished(
    site: str, standin: StandinServer, context: BrowserContext, theme: str, viewport: str
) -> None:
    standin.script(Reply(text=MARKDOWN + sentence(200), tps=50))
    page = context.new_page()
    page.set_viewport_size(VIEWPORTS[viewport])
    page.emulate_media(color_scheme="light")
    open_chat(page, site)
    set_theme(page, theme)
    assert_accessible(page, "an empty chat")

    reply = send(page, "Show me some markdown")
    expect(reply.locator(".body table")).to_be_visible()
    expect(reply.locator(".body pre code .hljs-comment")).to_have_count(2)
    assert_accessible(page, "a reply streaming")
    expect(reply).to_have_attribute("data-status", "streaming")  # it was checked mid-stream

    finish(reply)
    expect(reply.locator(".body a")).to_have_text("a link")
    assert_accessible(page, "a finished reply")
    assert no_csp_violations(page) == []


# Scrolling: the list follows a streaming reply only while the reader is at its bottom.

GEOMETRY = """(list) => ({
  top: list.scrollTop,
  fromBottom: list.scrollHeight - list.scrollTop - list.clientHeight,
  overflow: list.scrollHeight - list.clientHeight,
  page: document.scrollingElement.scrollHeight - innerHeight,
})"""


def geometry(page: Page) -> dict[str, float]:
    return page.locator("#messages").evaluate(GEOMETRY)


# The reader turns the mouse wheel over the list: where the view settles (a wheel scrolls
# smoothly, over several frames), once it is `away` from the bottom (or back at it).
SETTLED = """(list, away) => {
  window.__settled = new Promise((resolve) => {
    const done = () => {
      const fromBottom = list.scrollHeight - list.scrollTop - list.clientHeight;
      if (away ? fromBottom > 100 : fromBottom < 1) {
        list.removeEventListener("scrollend", done);
        resolve(list.scrollTop);
      }
    };
    list.addEventListener("scrollend", done);
  });
}"""


def reader_scrolls(page: Page, delta_y: int) -> float:
    messages = page.locator("#messages")
    messages.evaluate(SETTLED, delta_y < 0)
    messages.hover()
    page.mouse.wheel(0, delta_y)
    return page.evaluate("window.__settled")


def grows(page: Page, reply: Locator) -> None:
    """Wait for more of the streaming reply (two more renderings)."""
    wait_streaming_past(page, reply, wait_streaming_past(page, reply, text_length(reply)))


def test_scrolling_up_mid_stream_stops_following_until_jump_to_latest(
    site: str, standin: StandinServer, context: BrowserContext
) -> None:
    history = "\n\n".join(sentence(40, i) for i in range(12))
    long_reply = "\n\n".join(sentence(10, i) for i in range(36))
    standin.script(Reply(text=history, tps=0), Reply(text=long_reply, tps=50))
    page = context.new_page()
    page.set_viewport_size(VIEWPORTS["desktop"])
    open_chat(page, site)
    jump = page.get_by_role("button", name="Jump to latest")
    finish(send(page, "Something long to scroll through"))
    start = geometry(page)
    assert start["overflow"] > 400 and start["fromBottom"] < 1  # a list to scroll, at its end
    assert start["page"] == 0  # the list scrolls, the page does not

    reply = send(page, "And now a long reply")
    grows(page, reply)
    assert geometry(page)["fromBottom"] < 1  # following the reply as it streams
    expect(jump).to_be_hidden()

    # The reader scrolls up: new text keeps arriving below, and the view stays where they are.
    top = reader_scrolls(page, -600)
    expect(jump).to_be_visible()
    grows(page, reply)
    grows(page, reply)
    now = geometry(page)
    assert now["top"] == top and now["fromBottom"] > 100
    assert_accessible(page, "scrolled up mid-stream, Jump to latest shown")

    jump.click()
    expect(jump).to_be_hidden()
    assert geometry(page)["fromBottom"] < 1
    grows(page, reply)
    assert geometry(page)["fromBottom"] < 1  # following again
    expect(reply).to_have_attribute("data-status", "streaming")  # all of this mid-stream

    # Up again: the end of the reply (its final rendering and metrics) does not pull them down.
    top = reader_scrolls(page, -400)
    expect(jump).to_be_visible()
    expect(reply).to_have_attribute("data-status", "completed", timeout=20_000)
    assert geometry(page)["top"] == top
    expect(jump).to_be_visible()

    # Back at the bottom by themselves: the button goes.
    reader_scrolls(page, 5000)
    expect(jump).to_be_hidden()
    assert geometry(page)["fromBottom"] < 1


# Screen readers: a reply's start and end are announced, not its tokens.

# Records, from the page's first paint, every text the announcement region and the status
# line are given (a live region speaks on each change).
RECORD_LIVE_TEXT = """
window.__spoken = { announcer: [], status: [] };
document.addEventListener("DOMContentLoaded", () => {
  for (const [key, id] of [["announcer", "announcer"], ["status", "status"]]) {
    const region = document.getElementById(id);
    new MutationObserver(() => window.__spoken[key].push(region.textContent))
      .observe(region, { childList: true, characterData: true, subtree: true });
  }
});
"""


def spoken(page: Page, region: str) -> list[str]:
    return page.evaluate("(region) => window.__spoken[region]", region)


def test_a_reply_is_announced_when_it_starts_and_ends_not_token_by_token(
    site: str, standin: StandinServer, context: BrowserContext
) -> None:
    standin.script(
        Reply(text=sentence(40), tps=50),
        Reply(text=sentence(120), tps=40),
        Reply(error_status=400, error_message="The model refused this one."),
    )
    context.add_init_script(RECORD_LIVE_TEXT)
    page = context.new_page()
    open_chat(page, site)
    messages = page.get_by_role("list", name="Conversation")
    assert messages.evaluate(
        "(list) => list.closest('[aria-live], [role=log], [role=status]') === null"
    )
    status_before = spoken(page, "status")

    reply = send(page, "Hello")
    wait_streaming_past(page, reply, 20)
    expect(reply).to_have_attribute("aria-busy", "true")
    assert spoken(page, "announcer") == ["Assistant is replying…"]
    finish(reply)
    expect(reply).not_to_have_attribute("aria-busy", "true")
    assert spoken(page, "announcer") == ["Assistant is replying…", "Reply finished"]

    reply = send(page, "A long one, which I stop")
    wait_streaming_past(page, reply, 20)
    page.get_by_role("button", name="Stop").click()
    finish(reply, "stopped")
    expect(reply).not_to_have_attribute("aria-busy", "true")

    reply = send(page, "This one fails")
    run_id = finish(reply, "failed")
    error = Message.objects.get(pk=run_id).error
    assert error
    assert spoken(page, "announcer") == [
        "Assistant is replying…",
        "Reply finished",
        "Assistant is replying…",
        "Reply stopped",
        "Assistant is replying…",
        f"Reply failed: {error}",
    ]
    expect(page.locator("#announcer")).to_have_text(f"Reply failed: {error}")
    # The status line (a live region too) said nothing while three replies streamed.
    assert spoken(page, "status") == status_before
    expect(reply.locator(".reply-error")).to_have_text(error)
    assert_accessible(page, "after a failed reply")
    page.reload()  # the same, from the server's markup
    expect(page.locator("li.message.assistant").last.locator(".reply-error")).to_have_text(error)
    assert_accessible(page, "a failed reply, reloaded")


# The header.


def test_the_header_says_guest_as_soon_as_a_visitor_becomes_one(
    site: str, context: BrowserContext
) -> None:
    page = context.new_page()
    response = page.goto(site)
    assert response is not None and response.status == 200
    header = page.get_by_role("banner")
    assert "Guest" not in (response.text().split("<main")[0])  # a visitor is nobody yet...
    expect(page.locator("#status")).to_have_attribute("data-state", "open")
    expect(header.get_by_text("Guest", exact=True)).to_be_visible()  # ...until the page asks
    page.reload()
    expect(header.get_by_text("Guest", exact=True)).to_be_visible()  # and the server agrees
