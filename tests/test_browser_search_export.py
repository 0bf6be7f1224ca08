"""Searching conversations from the sidebar and exporting one, in a real browser (the setup
of test_browser.py: headless Chromium against a daphne process and the stand-in)."""

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from streaming.models import Message, Thread
from tests.standin import Reply, StandinServer
from tests.test_browser import (  # noqa: F401  (fixtures: the browser, its contexts, the site)
    _orm_beside_playwright,
    browser,
    context,
    finish,
    new_context,
    no_csp_violations,
    open_chat,
    send,
    site,
)

pytestmark = pytest.mark.django_db(transaction=True)


def sidebar(page: Page):
    return page.get_by_role("complementary", name="Conversations")


def listed(page: Page):
    """The conversation links the sidebar shows (its list, or the search's matches)."""
    return sidebar(page).get_by_role("listitem").get_by_role("link")


def new_chat(page: Page) -> None:
    page.get_by_role("link", name="New chat").click()
    expect(page.locator("#status")).to_have_attribute("data-state", "open")


def test_the_search_box_shows_the_servers_matches_and_clearing_it_restores_the_list(
    site: str, standin: StandinServer, context: BrowserContext
) -> None:
    standin.script(
        Reply(text="Lentils simmered with cumin and onions."),
        Reply(text="Build a wheel, then upload it with twine."),
        Reply(text="Try the Canary Islands in March."),
    )
    page = context.new_page()
    open_chat(page, site)
    finish(send(page, "What should I cook tonight?"))
    new_chat(page)
    finish(send(page, "How do I publish a Python package?"))
    new_chat(page)
    finish(send(page, "Where to go on holiday?"))
    everything = ["Where to go on holiday?", "How do I publish a Python package?", "What should I cook tonight?"]
    expect(listed(page)).to_have_text(everything)

    box = page.get_by_role("searchbox", name="Search conversations")
    # A word's beginning, found in a reply of a conversation that is not open: only the
    # server has that text.
    assert "cumin" not in page.content()
    with page.expect_response(re.compile(r"/api/threads\?q=cumi&page=1$")) as searched:
        box.fill("cumi")
    assert searched.value.ok
    expect(listed(page)).to_have_text(["What should I cook tonight?"])
    status = sidebar(page).get_by_role("status")
    expect(status).to_have_text("1 conversation matches")

    box.fill("PYTH")  # in a title, in any case
    expect(listed(page)).to_have_text(["How do I publish a Python package?"])
    listed(page).first.click()  # a match opens its conversation
    expect(page).to_have_url(re.compile(r"/t/[0-9a-f-]{36}$"))
    expect(page.locator("#status")).to_have_attribute("data-state", "open")
    expect(page.locator("li.message.assistant .body")).to_have_text("Build a wheel, then upload it with twine.")

    box = page.get_by_role("searchbox", name="Search conversations")
    box.fill("zebra")
    expect(status).to_have_text("No conversations match.")
    expect(listed(page)).to_have_count(0)

    box.fill("")  # cleared: the normal list is back
    expect(listed(page)).to_have_text(everything)
    expect(status).to_be_hidden()

    box.fill("island")
    expect(listed(page)).to_have_text(["Where to go on holiday?"])
    box.press("Escape")  # Escape clears the box, and the list is back
    expect(box).to_have_value("")
    expect(listed(page)).to_have_text(everything)
    assert no_csp_violations(page) == []


def test_more_matches_than_a_page_come_with_load_more(
    site: str, standin: StandinServer, context: BrowserContext
) -> None:
    standin.script(Reply(text="Noted."))
    page = context.new_page()
    open_chat(page, site)
    finish(send(page, "A first note"))
    owner = Thread.objects.get(title="A first note").owner
    Thread.objects.bulk_create([Thread(owner=owner, title=f"Meeting note {i}") for i in range(55)])

    page.get_by_role("searchbox", name="Search conversations").fill("note")
    expect(listed(page)).to_have_count(50)
    more = page.get_by_role("button", name="Load more")
    expect(sidebar(page).get_by_role("status")).to_have_text("50+ conversations match")
    more.click()
    expect(listed(page)).to_have_count(56)
    expect(more).to_be_hidden()
    expect(sidebar(page).get_by_role("status")).to_have_text("56 conversations match")
    titles = listed(page).all_inner_texts()
    assert sorted(titles) == sorted(["A first note", *(f"Meeting note {i}" for i in range(55))])


def test_export_downloads_the_conversation_as_markdown_or_json(
    site: str, standin: StandinServer, context: BrowserContext
) -> None:
    answer = "Paris is the capital of **France**."
    standin.script(Reply(text=answer))
    page = context.new_page()
    open_chat(page, site)
    export = page.get_by_role("button", name="Export")
    expect(export).to_be_hidden()  # a new chat has nothing to export yet
    run_id = finish(send(page, "What is the capital of France?"))
    expect(export).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_have_text("What is the capital of France?")

    export.click()
    expect(export).to_have_attribute("aria-expanded", "true")
    with page.expect_download() as downloading:
        page.get_by_role("link", name="Markdown (.md)").click()
    download = downloading.value
    assert download.suggested_filename == "what-is-the-capital-of-france.md"
    question, reply = Message.objects.filter(thread=Message.objects.get(pk=run_id).thread_id).order_by("created_at")
    when = [m.created_at.strftime("%Y-%m-%d %H:%M UTC") for m in (question, reply)]
    assert Path(download.path()).read_text() == (
        "# What is the capital of France?\n\n"
        f"## You — {when[0]}\n\n"
        "What is the capital of France?\n\n"
        f"## Assistant — {when[1]}\n\n"
        f"{answer}\n"
    )
    expect(page.get_by_role("link", name="Markdown (.md)")).to_be_hidden()  # the menu closed

    # With the keyboard: Enter opens the menu, Tab reaches its links, Escape closes it.
    export.focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Markdown (.md)")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_role("link", name="Markdown (.md)")).to_be_hidden()
    expect(export).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="JSON (.json)")).to_be_focused()
    with page.expect_download() as downloading:
        page.keyboard.press("Enter")
    download = downloading.value
    assert download.suggested_filename == "what-is-the-capital-of-france.json"
    exported = json.loads(Path(download.path()).read_text())
    assert exported["thread"]["title"] == "What is the capital of France?"
    assert [(m["role"], m["content"]) for m in exported["messages"]] == [
        ("user", "What is the capital of France?"), ("assistant", answer),
    ]
    assert exported["messages"][1]["metrics"]["token_count"] == reply.token_count > 0
    assert reply.status == "completed"  # nothing was stopped by the Escape above
    assert no_csp_violations(page) == []


# WCAG AA: 4.5:1 for text, 3:1 for a control's edge.
CONTRAST = """(selectors) => {
  const parse = (value) => {
    const [r, g, b, a = 1] = value.match(/[\\d.]+/g).map(Number);
    return { r, g, b, a };
  };
  const luminance = ({ r, g, b }) => {
    const f = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (element) => {
    for (; element; element = element.parentElement) {
      const colour = parse(getComputedStyle(element).backgroundColor);
      if (colour.a > 0) return colour;
    }
    return { r: 255, g: 255, b: 255, a: 1 };
  };
  const ratio = (x, y) => {
    const [hi, lo] = [luminance(x), luminance(y)].sort((p, q) => q - p);
    return (hi + 0.05) / (lo + 0.05);
  };
  const found = {};
  for (const selector of selectors) {
    const element = document.querySelector(selector);
    const style = getComputedStyle(element);
    found[selector] = ratio(parse(style.color), background(element));
    found[`${selector}::placeholder`] = ratio(parse(getComputedStyle(element, "::placeholder").color), background(element));
    found[`${selector} edge`] = ratio(parse(style.borderTopColor), background(element.parentElement));
  }
  return found;
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_search_and_export_are_legible_in_both_themes(
    site: str, standin: StandinServer, context: BrowserContext, scheme: str
) -> None:
    standin.script(Reply(text="Yes."))
    page = context.new_page()
    page.emulate_media(color_scheme=scheme)
    open_chat(page, site)
    finish(send(page, "Legible?"))
    page.get_by_role("button", name="Export").click()
    page.get_by_role("searchbox", name="Search conversations").fill("zzz")
    expect(sidebar(page).get_by_role("status")).to_have_text("No conversations match.")
    ratios = page.evaluate(
        CONTRAST, ["#thread-search", "#search-status", "#export", "#export-menu a", "#conversation-title"]
    )
    assert ratios["#thread-search edge"] >= 3, ratios
    assert ratios["#export edge"] >= 3, ratios
    assert ratios["#thread-search::placeholder"] >= 4.5, ratios
    text = {k: v for k, v in ratios.items() if " " not in k and "::" not in k}
    assert min(text.values()) >= 4.5, ratios
