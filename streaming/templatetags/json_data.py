"""Template filters that hand data to the page's scripts.

`{{ value|as_json }}` inside an attribute (`data-steps="{{ m.steps|as_json }}"`): the JSON
text is not marked safe, so the template's auto-escaping makes it a valid attribute value,
and `JSON.parse(element.dataset.steps)` reads back exactly `value`.
"""

import json
from typing import Any

from django import template

register = template.Library()


@register.filter
def as_json(value: Any) -> str:
    """`value` as JSON text, still to be escaped (never markup)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
