"""Tools for the agent-feature tests (named in `AGENT_TOOLS` by the test workers)."""

import asyncio

from agents import function_tool


@function_tool(failure_error_function=None)
async def nap(seconds: float) -> str:
    """Wait, then say so.

    Args:
        seconds: How long to wait.
    """
    await asyncio.sleep(seconds)
    return f"Slept {seconds:g} s."


@function_tool(failure_error_function=None)
async def explode(reason: str) -> str:
    """Fail.

    Args:
        reason: Why.
    """
    raise RuntimeError(reason)


@function_tool
async def echo(text: str) -> str:
    """Answer `text` as is (markup included).

    Args:
        text: What to answer.
    """
    return text
