"""Warm-up: run the agent once, at worker start, on a canned reply served in-process.

The first reply of a fresh worker would otherwise pay for what the Agents SDK and the
`openai` client set up lazily on first use (imports, pydantic validators for every stream
event type, the agent's run machinery): hundreds of milliseconds on the event loop, during
which every other connection of that worker waits too. The canned reply goes through the
same model class as real replies (Responses or Chat Completions), over an
`httpx2.MockTransport` (openai's HTTP client): nothing leaves the process.

Under daphne, the worker's own connections are opened as its event loop starts (the run
manager with its event log and heartbeats, the model client, the database pool), for the
same reason.
"""

import asyncio
import gc
import json
import logging
import sys
import threading
import time
from typing import Any

import httpx2
import openai
from agents import Agent, OpenAIChatCompletionsModel, OpenAIResponsesModel, RunConfig, Runner
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from . import agent_runtime

logger = logging.getLogger(__name__)

_TEXT = ["Warm", " up"]


def _sse(events: list[dict[str, Any]], *, named: bool) -> bytes:
    frames = []
    for data in events:
        head = f"event: {data['type']}\n" if named else ""
        frames.append(f"{head}data: {json.dumps(data)}\n\n")
    if not named:
        frames.append("data: [DONE]\n\n")
    return "".join(frames).encode()


def _responses_stream() -> bytes:
    item_id, text = "msg_warmup", "".join(_TEXT)
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    item = {"id": item_id, "type": "message", "role": "assistant", "status": "completed", "content": [part]}
    usage = {
        "input_tokens": 1, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": len(_TEXT), "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 1 + len(_TEXT),
    }  # fmt: skip

    def response(status: str, output: list[Any], usage: Any) -> dict[str, Any]:
        return {
            "id": "resp_warmup", "object": "response", "created_at": int(time.time()),
            "status": status, "model": "warmup", "output": output, "usage": usage,
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "text": {"format": {"type": "text"}},
        }  # fmt: skip

    at = {"item_id": item_id, "output_index": 0, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": response("in_progress", [], None)},
        {"type": "response.output_item.added", "output_index": 0, "item": {**item, "status": "in_progress", "content": []}},
        {"type": "response.content_part.added", **at, "part": {**part, "text": ""}},
        *({"type": "response.output_text.delta", **at, "delta": t, "logprobs": []} for t in _TEXT),
        {"type": "response.output_text.done", **at, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **at, "part": part},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": response("completed", [item], usage)},
    ]  # fmt: skip
    for number, event in enumerate(events):
        event["sequence_number"] = number
    return _sse(events, named=True)


def _chat_completions_stream() -> bytes:
    base = {"id": "chatcmpl-warmup", "created": int(time.time()), "model": "warmup", "object": "chat.completion.chunk"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    chunks = [chunk({"role": "assistant", "content": ""}), *(chunk({"content": t}) for t in _TEXT)]
    return _sse([*chunks, chunk({}, "stop")], named=False)


def _model(client: openai.AsyncOpenAI) -> Any:
    if settings.AGENT_API == "chat_completions":
        return OpenAIChatCompletionsModel(model="warmup", openai_client=client)
    return OpenAIResponsesModel(model="warmup", openai_client=client)


async def _run_once() -> str:
    body = _chat_completions_stream() if settings.AGENT_API == "chat_completions" else _responses_stream()

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(answer))
    client = openai.AsyncOpenAI(api_key="warmup", base_url="http://warmup.invalid/v1", http_client=http)
    agent = Agent(name=agent_runtime.AGENT_NAME, instructions="", model=_model(client))
    try:
        result = Runner.run_streamed(
            agent, [{"role": "user", "content": "warm up"}], max_turns=1,
            run_config=RunConfig(tracing_disabled=True),
        )
        steps = agent_runtime.agent_steps(result, agent_runtime.RunTools())
        return "".join([step.text async for step in steps if step.kind == "text"])
    finally:
        await client.close()


def warm_up() -> None:
    """Run the canned reply once (on a thread of its own, with its own event loop, so it
    works whether or not the caller is inside one). Failures are logged, never raised: a
    worker that could not warm up still serves."""
    started = time.monotonic()
    outcome: list[str | BaseException] = []

    def run() -> None:
        try:
            outcome.append(asyncio.run(_run_once()))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, name="agent-warm-up")
    thread.start()
    thread.join()
    if outcome and isinstance(outcome[0], BaseException):
        logger.warning("agent warm-up failed", exc_info=outcome[0])
    else:
        logger.debug("agent warm-up took %.3fs", time.monotonic() - started)


def freeze_heap() -> None:
    """Move everything the worker holds now (modules, classes, settings, the warmed SDK's
    validators, its connections: hundreds of thousands of objects that live as long as
    it does) out of the garbage collector's way (`gc.freeze`). A full collection then
    walks only what was made since, instead of pausing the event loop, and every stream
    on it, for 100-200 ms each time (measured here) to find the startup heap alive."""
    gc.collect()
    gc.freeze()


def _open_database() -> None:
    connection.ensure_connection()  # opens the pool
    connection.close()  # and gives the connection back to it


async def _open_connections() -> None:
    from .manager import run_manager

    try:
        await run_manager().ensure_started()
        if settings.OPENAI_API_KEY:
            agent_runtime.openai_client()
        await sync_to_async(_open_database)()
    except Exception:
        logger.warning("could not open this worker's connections ahead of time", exc_info=True)
    freeze_heap()  # the connections' objects too


def open_connections_on_start() -> None:
    """Under daphne, open the worker's connections as soon as its event loop runs (daphne
    has no ASGI lifespan events; its loop is `daphne.server.twisted_loop`). Elsewhere,
    nothing: they open on first use."""
    server = sys.modules.get("daphne.server")
    loop = getattr(server, "twisted_loop", None)
    if isinstance(loop, asyncio.AbstractEventLoop) and not loop.is_running():
        task: list[asyncio.Task[None]] = []
        loop.call_soon(lambda: task.append(loop.create_task(_open_connections())))
