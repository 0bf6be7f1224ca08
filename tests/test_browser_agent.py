"""A reply's thinking and tool calls in the chat page, in a real browser: a tool card with a
spinner, then ✓ and its output; the Thinking section as it streams; both the same after a
reload mid-reply and after the end; tool output that holds HTML stays text; axe-core finds
nothing serious in any of their states.

The fixtures are test_browser.py's; `agent_site` is its `site` with the agent's tools on
(`AGENT_TOOLS`). The stand-in scripts the model: a first reply that reasons and calls a
tool, then the answer the agent gets when it sends the tool's output back.
"""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from streaming.models import Message
from tests.standin import Reply, StandinServer, ToolCall
from tests.test_browser import (  # noqa: F401 (fixtures)
    _orm_beside_playwright,
    browser,
    context,
    finish,
    new_context,
    no_csp_violations,
    open_chat,
    send,
    sentence,
    site,
)
from tests.test_browser_a11y import assert_accessible, set_theme

pytestmark = pytest.mark.django_db(transaction=True)

TOOLS = "streaming.tools.current_time,streaming.tools.calculate"
REASONING = "The user asks for the time.\n\nI will call **current_time** for UTC."
# The call's arguments in many pieces: with the stand-in's pace, the spinner shows a while.
PIECES = ['{"', "time", "zone", '"', ": ", '"', "UTC", '"}']
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def agent_site(daphne_server, standin: StandinServer) -> str:
    """test_browser.py's `site`, with the built-in tools given to the agent."""
    server = daphne_server(
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=standin.base_url,
        AGENT_MODEL="gpt-test",
        AGENT_TOOLS=TOOLS,
        DJANGO_ALLOW_ASYNC_UNSAFE="",  # the product itself keeps Django's check
    )
    return server.url


def steps(reply: Locator) -> Locator:
    return reply.locator(":scope > .steps")


def thinking(reply: Locator) -> Locator:
    return steps(reply).locator(":scope > details.thinking")


def tool_cards(reply: Locator) -> Locator:
    return steps(reply).locator(":scope > details.tool")


def section(card: Locator, label: str) -> Locator:
    """A card's Arguments or Output text (its <pre><code>)."""
    return card.locator(".tool-section").filter(has_text=label).locator("pre > code")


def drawn(reply: Locator) -> str:
    """The steps as drawn, whitespace in the markup aside (compared across reloads)."""
    return steps(reply).evaluate("(element) => element.outerHTML")


def wait_steps_settled(page: Page, reply: Locator) -> str:
    """The steps once they stopped changing for a moment (the events so far all applied)."""
    before = drawn(reply)
    while True:
        page.wait_for_timeout(300)
        now = drawn(reply)
        if now == before:
            return now
        before = now


def stored_steps(run_id: str) -> list[dict[str, Any]]:
    return Message.objects.get(pk=run_id).steps


def test_a_tool_call_shows_a_spinner_then_its_result_and_thinking_streams_and_both_survive_reloads(
    agent_site: str, standin: StandinServer, context: BrowserContext
) -> None:
    answer = "It is " + sentence(80)
    standin.script(
        # Reasoning, then the call: its arguments stream slowly enough to see the spinner.
        Reply(
            text="",
            reasoning=REASONING,
            tool_calls=[ToolCall(name="current_time", arguments="".join(PIECES), pieces=PIECES)],
            tps=5,
        ),
        # The follow-up call, held a while (the tool has answered: ✓ and its output), then
        # an answer long enough to reload in the middle of.
        Reply(text=answer, first_token_delay=4, tps=25),
    )
    page = context.new_page()
    open_chat(page, agent_site)
    reply = send(page, "What time is it?")

    # The Thinking section streams, open, above the (still empty) reply text.
    section_ = thinking(reply)
    expect(section_).to_have_count(1)
    expect(section_.locator("summary")).to_have_text("Thinking")
    expect(section_).to_have_attribute("open", "")
    expect(section_.locator(".thinking-text")).to_contain_text("The user asks")
    expect(section_.locator(".thinking-text strong")).to_have_text("current_time")  # markdown
    assert reply.evaluate("(item) => item.querySelector(':scope > .steps + .body') !== null")

    # The tool card: its name, and a spinner labelled Running until the result.
    card = tool_cards(reply).first
    expect(card.locator(".tool-name")).to_have_text("current_time")
    expect(card.get_by_role("img", name="Running")).to_be_visible()
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(section_).not_to_have_attribute("open", "")  # thinking is over once the call starts

    # The result: ✓ (Done), the card collapses; inside, the arguments and the output.
    expect(card.get_by_role("img", name="Done")).to_have_text("✓")
    expect(card).to_have_attribute("data-state", "done")
    expect(card).not_to_have_attribute("open", "")
    expect(reply.locator(".body")).to_have_text("")  # the follow-up is still pending
    expect(reply).to_have_attribute("data-status", "streaming")
    card.locator("summary").click()
    expect(section(card, "Arguments")).to_have_text('{\n  "timezone": "UTC"\n}')
    expect(section(card, "Output")).to_contain_text(str(datetime.now(UTC).year))
    assert_accessible(page, "a tool call done, opened, the follow-up pending")
    card.locator("summary").click()  # as it was: collapsed

    # A reload mid-reply replays the run: the same cards and thinking.
    before = wait_steps_settled(page, reply)
    expect(reply.locator(".body")).not_to_have_text("", timeout=10_000)  # the answer streams
    page.reload()
    reply = page.locator("li.message.assistant").first
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(tool_cards(reply)).to_have_count(1)
    assert wait_steps_settled(page, reply) == before

    run_id = finish(reply)
    expect(reply.locator(".body")).to_have_text(answer)
    ended = drawn(reply)
    assert ended == before
    assert [s["type"] for s in stored_steps(run_id)] == ["reasoning", "tool"]

    # After the end, from the server's markup (data-steps): the same again, and Copy copies
    # the reply's text only.
    page.reload()
    reply = page.locator("li.message.assistant").first
    expect(reply).to_have_attribute("data-status", "completed")
    expect(tool_cards(reply)).to_have_count(1)
    assert drawn(reply) == ended
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    reply.get_by_role("button", name="Copy message").click()
    expect(reply.get_by_role("button", name="Copy message")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == answer

    # Keyboard: Tab reaches the summaries; Enter opens and closes a card.
    summary = tool_cards(reply).first.locator("summary")
    summary.focus()
    page.keyboard.press("Enter")
    expect(tool_cards(reply).first).to_have_attribute("open", "")
    page.keyboard.press("Enter")
    expect(tool_cards(reply).first).not_to_have_attribute("open", "")
    assert no_csp_violations(page) == []


def test_html_in_a_tool_call_stays_text(
    agent_site: str, standin: StandinServer, context: BrowserContext
) -> None:
    arguments = json.dumps({"timezone": XSS})
    standin.script(
        Reply(
            text="",
            reasoning=f"Reasoning with {XSS} in it.",
            tool_calls=[ToolCall(name="current_time", arguments=arguments)],
        ),
        Reply(text="Done."),
    )
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    open_chat(page, agent_site)
    reply = send(page, "What time is it in a strange place?")
    run_id = finish(reply)
    card = tool_cards(reply).first
    expect(card).to_have_attribute("data-state", "failed")  # no such time zone
    card.locator("summary").click()
    expect(section(card, "Arguments")).to_contain_text(XSS)
    # The tool's error names the zone it was given: as text too.
    expect(section(card, "Output")).to_contain_text(f"Unknown time zone '{XSS}'")
    expect(thinking(reply).locator(".thinking-text")).to_contain_text(XSS)

    # An output that is HTML, stored: drawn as text from the server's markup and from the API.
    steps_ = stored_steps(run_id)
    steps_[1]["output"] = f"{XSS}<script>alert(2)</script>"
    Message.objects.filter(pk=run_id).update(steps=steps_)
    page.reload()
    reply = page.locator("li.message.assistant").first
    card = tool_cards(reply).first
    card.locator("summary").click()
    expect(section(card, "Output")).to_have_text(f"{XSS}<script>alert(2)</script>")
    assert page.locator("#messages img, #messages script").count() == 0
    page.wait_for_timeout(200)  # a late onerror would have fired by now
    assert dialogs == []
    assert no_csp_violations(page) == []


# The markup of every state (thinking, running, done, failed, truncated), drawn by the
# page's own modules into a finished reply, in both themes: this needs no tools on the server.
DRAW_STEPS = """async ([item, steps]) => {
  const base = document.querySelector("script[type=module][src$='app.js']").src.replace(/app\\.js$/, "");
  const { AgentSteps } = await import(base + "agent_steps.js");
  const { createRenderer } = await import(base + "markdown.js");
  const { marked, DOMPurify, hljs } = await import(base + "vendor.js");
  const renderer = createRenderer({ marked, DOMPurify, hljs });
  new AgentSteps(item, { renderer }).render(steps, { ended: false });
  for (const details of item.querySelectorAll(".steps details")) details.open = true;
}"""

EVERY_STATE = [
    {"type": "reasoning", "text": "Some *thinking*, with `code` and\n\n```python\nprint('hi')\n```"},
    {"type": "tool", "call_id": "a", "name": "current_time", "arguments": '{"timezone": "UTC"}',
     "output": "2026-01-01T12:00:00+00:00", "error": False, "truncated": False},
    {"type": "tool", "call_id": "b", "name": "calculate", "arguments": '{"expression": "1/0"}',
     "output": "division by zero", "error": True, "truncated": False},
    {"type": "tool", "call_id": "c", "name": "calculate", "arguments": '{"expression": "9**9**9"}',
     "output": "4" * 4000, "error": False, "truncated": True},
    {"type": "tool", "call_id": "d", "name": "current_time", "arguments": "{", "output": None,
     "error": False, "truncated": False},
]  # fmt: skip


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_axe_finds_nothing_serious_in_every_state_of_the_steps(
    site: str, standin: StandinServer, context: BrowserContext, theme: str
) -> None:
    standin.script(Reply(text="Hello there."))
    page = context.new_page()
    page.emulate_media(color_scheme="light")
    open_chat(page, site)
    set_theme(page, theme)
    reply = send(page, "Hello")
    finish(reply)
    page.evaluate(DRAW_STEPS, [reply.element_handle(), EVERY_STATE])
    expect(tool_cards(reply)).to_have_count(4)
    expect(tool_cards(reply).last.get_by_role("img", name="Running")).to_be_visible()
    expect(tool_cards(reply).nth(1).get_by_role("img", name="Failed")).to_have_text("✗")
    expect(tool_cards(reply).nth(2).locator(".tool-label").last).to_have_text("Output (truncated)")
    assert_accessible(page, f"every state of the steps, opened, {theme}")
    for details in steps(reply).locator("details").all():
        details.evaluate("(element) => { element.open = false; }")
    assert_accessible(page, f"every state of the steps, collapsed, {theme}")
    assert no_csp_violations(page) == []
