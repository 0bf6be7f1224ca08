"""The chat page's versions in a real browser: Regenerate, Edit and resend, ‹ › between
versions, and a message's own tools (Copy, its time)."""

from datetime import datetime

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.standin import Reply, StandinServer
from tests.test_browser import (  # noqa: F401 (fixtures)
    _orm_beside_playwright,
    browser,
    context,
    finish,
    new_context,
    no_csp_violations,
    open_chat,
    send,
    site,
    visible_text,
)

pytestmark = pytest.mark.django_db(transaction=True)


def tools(item: Locator) -> Locator:
    return item.locator(":scope > .tools")


def inputs(standin: StandinServer) -> list[list[dict]]:
    return [r.json["input"] for r in standin.requests if r.path.endswith("/responses")]


def conversation(page: Page) -> list[str]:
    return page.locator("li.message > .body").evaluate_all("(bodies) => bodies.map((b) => b.innerText.trim())")


def test_regenerate_makes_one_model_call_and_both_versions_stay_reachable(
    site: str, standin: StandinServer, context: BrowserContext
) -> None:
    standin.script(Reply(text="First answer.", tps=200), Reply(text="Second answer.", tps=200))
    page = context.new_page()
    open_chat(page, site)
    reply = send(page, "Name a colour")
    finish(reply)
    expect(reply.get_by_role("button", name="Regenerate")).to_be_visible()
    expect(page.get_by_role("button", name="Previous version")).to_have_count(0)  # one version so far

    reply.get_by_role("button", name="Regenerate").click()
    regenerated = page.locator("li.message.assistant")
    expect(regenerated.locator(".body")).to_have_text(["Second answer."])  # in place of the first
    finish(regenerated)
    assert inputs(standin) == [[{"role": "user", "content": "Name a colour"}]] * 2  # one call, same history
    expect(tools(regenerated).locator(".version")).to_have_text("2/2")
    assert conversation(page) == ["Name a colour", "Second answer."]

    page.get_by_role("button", name="Previous version").click()
    expect(page.locator("li.message.assistant .body")).to_have_text("First answer.")
    expect(page.locator("li.message.assistant .version")).to_have_text("1/2")
    expect(page.get_by_role("button", name="Previous version")).to_be_disabled()

    # The version shown is the conversation's: after a reload, and for the next turn.
    page.reload()
    expect(page.locator("li.message.assistant .body")).to_have_text("First answer.")
    page.get_by_role("button", name="Next version").click()
    expect(page.locator("li.message.assistant .body")).to_have_text("Second answer.")
    expect(page.locator("li.message.assistant .version")).to_have_text("2/2")
    assert len(standin.requests) == 2
    assert no_csp_violations(page) == []


def test_edit_and_resend_continues_from_the_edit_and_the_earlier_branch_stays_reachable(
    site: str, standin: StandinServer, context: BrowserContext
) -> None:
    standin.script(
        Reply(text="Paris.", tps=200), Reply(text="About two million.", tps=200),
        Reply(text="About eleven million.", tps=200),
    )
    page = context.new_page()
    open_chat(page, site)
    finish(send(page, "Capital of France?"))
    finish(send(page, "Its population?"))
    question = page.locator("li.message.user").nth(1)

    # Escape cancels: nothing is sent, the message is as it was.
    question.get_by_role("button", name="Edit").click()
    box = page.get_by_role("textbox", name="Edit message")
    expect(box).to_have_value("Its population?")
    expect(question.locator(".body")).to_be_hidden()
    expect(question.get_by_role("button", name="Edit")).to_be_hidden()  # the box stands in for the message
    box.press("Escape")
    expect(box).to_have_count(0)
    expect(question.locator(".body")).to_have_text("Its population?")
    expect(question.get_by_role("button", name="Edit")).to_be_focused()
    assert len(standin.requests) == 2

    question.get_by_role("button", name="Edit").click()
    box = page.get_by_role("textbox", name="Edit message")
    box.fill("Its population, metro area included?")
    box.press("Enter")
    expect(page.locator("li.message.assistant").nth(1).locator(".body")).to_have_text("About eleven million.")
    finish(page.locator("li.message.assistant").nth(1))
    assert inputs(standin)[-1] == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "Its population, metro area included?"},
    ]
    edited = page.locator("li.message.user").nth(1)
    expect(edited.locator(".version")).to_have_text("2/2")
    assert conversation(page) == [
        "Capital of France?", "Paris.", "Its population, metro area included?", "About eleven million.",
    ]

    edited.get_by_role("button", name="Previous version").click()
    expect(page.locator("li.message.user").nth(1).locator(".body")).to_have_text("Its population?")
    assert conversation(page) == ["Capital of France?", "Paris.", "Its population?", "About two million."]
    assert len(standin.requests) == 3


def test_a_message_can_be_copied_whole_and_shows_when_it_was_sent(
    site: str, standin: StandinServer, context: BrowserContext
) -> None:
    source = "Two steps:\n\n1. **Mix** the `flour`\n2. Bake"
    standin.script(Reply(text=source, tps=200))
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    open_chat(page, site)
    reply = send(page, "How do I bake bread?")
    finish(reply)

    reply.get_by_role("button", name="Copy message").click()
    expect(reply.get_by_role("button", name="Copy message")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == source  # the markdown, not the rendering
    page.locator("li.message.user").get_by_role("button", name="Copy message").click()
    expect(page.locator("li.message.user").get_by_role("button", name="Copy message")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "How do I bake bread?"

    for item in (page.locator("li.message.user"), reply):
        sent = item.locator("time")
        stamp = datetime.fromisoformat(sent.get_attribute("datetime").replace("Z", "+00:00"))
        assert abs((datetime.now(stamp.tzinfo) - stamp).total_seconds()) < 120
        local = stamp.astimezone()  # the browser's time zone is the test's
        assert sent.inner_text() in (local.strftime("%H:%M"), local.strftime("%I:%M %p").lstrip("0"))
    page.reload()  # the same times from the server
    expect(page.locator("li.message time")).to_have_count(2)
    assert page.locator("li.message.assistant time").get_attribute("datetime") is not None
