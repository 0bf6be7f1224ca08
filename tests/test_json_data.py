"""streaming/templatetags/json_data.py: data for the page's scripts, in an attribute."""

import json
from html.parser import HTMLParser

from django.template import Context, Template

STEPS = [
    {"type": "reasoning", "text": 'Quotes " and \' and <b>tags</b> & "ampersands"'},
    {
        "type": "tool",
        "call_id": "call_1",
        "name": "current_time",
        "arguments": '{"timezone": "UTC"}',
        "output": '"><img src=x onerror=alert(1)> ünïcødé ✓',
        "error": False,
        "truncated": True,
    },
]


class Attributes(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append(dict(attrs))


def test_as_json_in_an_attribute_reads_back_exactly_and_makes_no_markup() -> None:
    html = Template('{% load json_data %}<li data-steps="{{ steps|as_json }}"></li>').render(
        Context({"steps": STEPS})
    )
    parser = Attributes()
    parser.feed(html)
    assert len(parser.found) == 1  # the output's tags stayed inside the attribute
    assert json.loads(parser.found[0]["data-steps"] or "") == STEPS
    assert "<img" not in html and "<b>" not in html
