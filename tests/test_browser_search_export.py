"""Searching conversations from the sidebar, in a real browser (the setup of
test_browser.py: headless Chromium against a daphne process and the stand-in)."""

import re

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from streaming.models import Thread
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
    site: str, standin: StandinServer, context: BrowserContext  # noqa: F811
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
    site: str, standin: StandinServer, context: BrowserContext  # noqa: F811
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
