"""Built-in agent tools, examples of what `AGENT_TOOLS` names: the current date and time in
a time zone, and arithmetic on a parsed expression (never `eval`).

They are async (so that the tool timeout applies) and raise `ValueError` with a message
meant for the model, which sees it as the tool's error result.
"""

import ast
import math
import operator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agents import function_tool

EXPRESSION_LIMIT = 200  # characters
POWER_LIMIT = 1000  # largest exponent, and largest absolute base of a power
RESULT_DIGITS = 1000  # an integer result with more digits is refused

_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}  # fmt: skip
_UNARY: dict[type, Any] = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def now_in(timezone: str, *, now: datetime | None = None) -> str:
    """The date and time now in `timezone` (an IANA name such as "Europe/Paris")."""
    try:
        zone = ZoneInfo(timezone.strip() or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"Unknown time zone {timezone!r}; use an IANA name such as 'Europe/Paris'.") from None
    moment = (now or datetime.now(UTC)).astimezone(zone)
    return f"{moment:%A %d %B %Y, %H:%M:%S} {moment.tzname()} ({moment.isoformat(timespec='seconds')}) in {zone.key}"


def evaluate(expression: str) -> int | float:
    """The value of an arithmetic expression: numbers, + - * / // % **, parentheses."""
    if len(expression) > EXPRESSION_LIMIT:
        raise ValueError(f"The expression is longer than {EXPRESSION_LIMIT} characters.")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise ValueError(f"Not an arithmetic expression: {expression!r}.") from None
    return _value(tree.body)


def _value(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value  # type: ignore[return-value]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_value(node.operand))  # type: ignore[no-any-return]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > POWER_LIMIT or abs(left) > POWER_LIMIT):
            raise ValueError(f"Powers are limited to bases and exponents of at most {POWER_LIMIT}.")
        try:
            result = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ValueError("Division by zero.") from None
        except OverflowError:
            raise ValueError("The result is too large.") from None
        if isinstance(result, complex):
            raise ValueError("The result is not a real number.")
        if isinstance(result, int) and abs(result) >= 10**RESULT_DIGITS:
            raise ValueError("The result is too large.")
        if isinstance(result, float) and not math.isfinite(result):
            raise ValueError("The result is too large.")
        return result  # type: ignore[no-any-return]
    raise ValueError("Only numbers, + - * / // % ** and parentheses are allowed.")


@function_tool(failure_error_function=None)
async def current_time(timezone: str = "UTC") -> str:
    """Get the current date and time.

    Args:
        timezone: An IANA time zone name, such as "UTC", "Europe/Paris" or "America/New_York".
    """
    return now_in(timezone)


@function_tool(failure_error_function=None)
async def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression exactly (integers) or in floating point.

    Args:
        expression: Numbers with + - * / // % ** and parentheses, such as "(2 + 3) * 7 / 2".
    """
    return f"{expression.strip()} = {evaluate(expression)}"


BUILT_IN = ("streaming.tools.current_time", "streaming.tools.calculate")
