"""A scriptable stand-in for the parts of the OpenAI HTTP API this product uses.

A real aiohttp server running in its own thread with its own event loop, so the real
``openai`` client and the Agents SDK can be pointed at it with ``base_url``::

    with StandinServer() as server:
        server.script(Reply(text="Hello there", tps=50))
        client = AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0)

Every API request (Responses, Chat Completions, ChatKit sessions) consumes one scripted
reply; when the queue is empty ``server.default_reply`` is used. A reply can think and call
tools as well as answer: ``Reply(text="", reasoning="...", tool_calls=[ToolCall("get_weather",
'{"city": "Paris"}')])`` streams a reasoning summary and a function call in either API's
format; the agent's next request, carrying the call and its output (``server.requests``),
takes the next reply. Note that the openai client retries 429/5xx by default and each retry
is a new request consuming a new reply. From another process use
``control_script``/``control_reset``/``control_requests``, or run it in the foreground:
``python -m tests.standin --port 8123 [--text ...] [--tps 50]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import re
import signal
import threading
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)

DEFAULT_TEXT = "Hello from the stand-in model."
TOKEN_RE = re.compile(r"\s*\S+")
ARGUMENT_CHUNKS = 4  # a ToolCall's arguments stream in this many pieces unless scripted
ERROR_KINDS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "unknown_url"),
    429: ("requests", "rate_limit_exceeded"),
}
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}

Body = dict[str, Any]
ApiHandler = Callable[["Call"], Awaitable[web.StreamResponse]]


def split_tokens(text: str) -> list[str]:
    """Split text into ``\\s*\\S+`` pieces; trailing whitespace joins the last piece."""
    tokens: list[str] = TOKEN_RE.findall(text)
    rest = text[sum(map(len, tokens)) :]  # trailing whitespace
    if tokens:
        tokens[-1] += rest
    elif rest:
        tokens.append(rest)
    return tokens


@dataclass
class ToolCall:
    """A function call in a reply; its JSON arguments stream in pieces, paced like tokens."""

    name: str
    arguments: str = "{}"  # a JSON string, sent as is
    call_id: str = field(default_factory=lambda: "call_" + uuid.uuid4().hex[:24])
    pieces: list[str] | None = None  # explicit argument deltas; default ARGUMENT_CHUNKS even ones

    def __post_init__(self) -> None:
        if self.pieces is not None and "".join(self.pieces) != self.arguments:
            raise ValueError(f"ToolCall {self.name!r}: pieces do not join to its arguments")

    def chunks(self) -> list[str]:
        if self.pieces is not None:
            return list(self.pieces)
        size = max(1, -(-len(self.arguments) // ARGUMENT_CHUNKS))
        return [self.arguments[i : i + size] for i in range(0, len(self.arguments), size)]


@dataclass
class Reply:
    """What the stand-in answers to one request.

    Its output, in order: a reasoning summary (``reasoning``), function calls
    (``tool_calls``), then the message (``text``). A reply with tool calls and ``text=""``
    has no message, as a model asking for tools answers. Reasoning deltas, argument pieces
    and text tokens share one pace: ``first_token_delay`` before the first, then ``tps``.
    ``drop_after``, ``stamp_tokens`` and ``RecordedRequest.tokens_sent`` count text tokens
    only; a ``drop_after`` past the last text token aborts before the terminal events.
    """

    text: str = DEFAULT_TEXT
    tokens: list[str] | None = None  # explicit pieces; default split_tokens(text)
    tps: float | None = 0  # tokens per second; 0/None = as fast as possible
    first_token_delay: float = 0  # seconds before the first token (or before the answer)
    error_status: int | None = None  # answer this status with an OpenAI error body instead
    error_message: str = "The stand-in server was scripted to fail."
    drop_after: int | None = None  # send N tokens, then abort the TCP connection
    # Send, instead of the pieces, `f"{i}:{time.time():.6f} "` generated as token i is sent
    # (as many tokens as `pieces()` has), so a receiver can measure delivery latency.
    stamp_tokens: bool = False
    # A reasoning summary, streamed as split_tokens(reasoning) deltas. Chat Completions sends
    # it as `delta.reasoning_content` (`message.reasoning_content`), which the Agents SDK
    # reads as a reasoning summary; OpenAI's own Chat Completions never sends reasoning.
    reasoning: str | None = None
    tool_calls: list[ToolCall] | None = None

    def __post_init__(self) -> None:
        if self.tool_calls is not None:  # the control API rebuilds replies from JSON
            self.tool_calls = [
                c if isinstance(c, ToolCall) else ToolCall(**c) for c in self.tool_calls
            ]

    def pieces(self) -> list[str]:
        return list(self.tokens) if self.tokens is not None else split_tokens(self.text)

    def reasoning_pieces(self) -> list[str]:
        return split_tokens(self.reasoning or "")


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case keys
    json: Any  # parsed body or None
    stream: bool = False
    tokens_sent: int = 0
    finished: bool = False  # the whole reply, terminal events included, was sent
    stream_closed_early: bool = False  # the client hung up before we finished
    done: bool = False  # the handler is over, whatever the outcome


@dataclass
class Call:
    """One API request being answered."""

    request: web.Request
    record: RecordedRequest
    reply: Reply
    body: Body  # the JSON body, or {} if it was not an object
    tokens: list[str]  # the reply's token pieces
    due: float | None = None  # when the next streamed piece may be sent

    @property
    def tool_calls(self) -> list[ToolCall]:
        return self.reply.tool_calls or []

    @property
    def has_message(self) -> bool:
        return bool(self.tokens) or not self.tool_calls

    def output_tokens(self) -> int:
        """Every streamed piece: reasoning deltas, argument pieces and text tokens."""
        arguments = sum(len(c.chunks()) for c in self.tool_calls)
        return len(self.reply.reasoning_pieces()) + arguments + len(self.tokens)

    async def pace(self) -> None:
        """Wait for the next piece's slot: ``first_token_delay``, then one piece per 1/tps."""
        if self.due is None:
            self.due = time.monotonic() + self.reply.first_token_delay
        await asyncio.sleep(max(0.0, self.due - time.monotonic()))
        self.due += 1.0 / self.reply.tps if self.reply.tps else 0.0


class ClientGone(Exception):
    """The client closed the connection while we were still sending."""


class Dropped(Exception):
    """The reply's ``drop_after`` was reached: abort the connection."""


class StandinServer:
    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, default_reply: Reply | None = None
    ) -> None:
        self.host, self.port = host, port
        self.initial_default = default_reply or Reply()  # what reset() restores
        self.default_reply = self.initial_default
        self._queue: list[Reply] = []
        self._requests: list[RecordedRequest] = []
        self._sessions: dict[str, Body] = {}
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("StandinServer is not started")
        return self._base_url

    def start(self) -> str:
        """Serve from a new thread's event loop; return ``http://127.0.0.1:PORT/v1``."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="standin-openai", daemon=True
        )
        self._thread.start()
        try:
            self._runner = asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(
                timeout=10
            )
        except BaseException:  # e.g. the port is taken: do not leave the thread behind
            self.stop()
            raise
        logger.info("standin listening on %s", self._base_url)
        return self.base_url

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop, self._thread, self._runner, self._base_url = None, None, None, None

    async def _serve(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/_control/script", self._control_script)
        app.router.add_post("/_control/reset", self._control_reset)
        app.router.add_get("/_control/requests", self._control_requests)
        app.router.add_post("/v1/responses", self._api(self._responses))
        app.router.add_post("/v1/chat/completions", self._api(self._chat_completions))
        app.router.add_post("/v1/chatkit/sessions", self._api(self._chatkit_create))
        app.router.add_post(
            "/v1/chatkit/sessions/{session_id}/cancel", self._api(self._chatkit_cancel)
        )
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port).start()
        self.port = runner.addresses[0][1]
        self._base_url = f"http://{self.host}:{self.port}/v1"
        return runner

    def __enter__(self) -> StandinServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ scripting
    def script(self, *replies: Reply) -> None:
        """Queue replies; each following API request consumes one, in order."""
        with self._cond:
            self._queue.extend(replies)

    def reset(self) -> None:
        with self._cond:
            self._queue.clear()
            self._requests.clear()
            self.default_reply = self.initial_default
            self._cond.notify_all()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the list; its entries are live and keep updating."""
        with self._cond:
            return list(self._requests)

    def wait_for(
        self, predicate: Callable[[list[RecordedRequest]], Any], timeout: float = 5
    ) -> Any:
        """Block until ``predicate(requests)`` is truthy and return it; else TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (result := predicate(self._requests)):
                if (remaining := deadline - time.monotonic()) <= 0:
                    raise TimeoutError(f"standin: condition not met within {timeout}s")
                self._cond.wait(remaining)
            return result

    def wait_requests(self, count: int, timeout: float = 5) -> list[RecordedRequest]:
        return self.wait_for(lambda reqs: list(reqs) if len(reqs) >= count else None, timeout)

    def wait_done(self, index: int = -1, timeout: float = 5) -> RecordedRequest:
        return self.wait_for(lambda reqs: _pick(reqs, index, "done"), timeout)

    def wait_closed_early(self, index: int = -1, timeout: float = 5) -> RecordedRequest:
        return self.wait_for(lambda reqs: _pick(reqs, index, "stream_closed_early"), timeout)

    def _update(self, record: RecordedRequest, **changes: Any) -> None:
        with self._cond:
            for key, value in changes.items():
                setattr(record, key, value)
            self._cond.notify_all()

    async def _record(self, request: web.Request) -> RecordedRequest:
        body = None
        if request.can_read_body:
            with contextlib.suppress(ValueError):
                body = await request.json()
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            json=body,
            stream=isinstance(body, dict) and body.get("stream") is True,
        )
        with self._cond:
            self._requests.append(record)
            self._cond.notify_all()
        logger.debug("standin %s %s stream=%s", request.method, request.path, record.stream)
        return record

    def _api(self, handler: ApiHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Record the request, take the next reply, apply error_status, then run ``handler``."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            record = await self._record(request)
            with self._cond:
                reply = self._queue.pop(0) if self._queue else self.default_reply
            try:
                if not record.stream or reply.error_status is not None:
                    await asyncio.sleep(reply.first_token_delay)
                if reply.error_status is not None:
                    return error_response(reply.error_status, reply.error_message)
                body = record.json if isinstance(record.json, dict) else {}
                tokens = reply.pieces()
                if reply.stamp_tokens:  # stamped now; streaming re-stamps each one as sent
                    tokens = [stamp_token(i) for i in range(len(tokens))]
                return await handler(Call(request, record, reply, body, tokens))
            finally:
                self._update(record, done=True)

        return wrapped

    # ------------------------------------------------------------------ sending
    async def _stream(
        self, call: Call, body: AsyncIterator[bytes], tail: Callable[[], list[bytes]]
    ) -> web.StreamResponse:
        """Send ``body``'s events as it makes them (it paces itself), then the tail events.

        With ``drop_after`` the connection is aborted instead of sending the tail (or earlier,
        when ``_text_tokens`` reaches it).
        """
        request, record = call.request, call.record
        resp = web.StreamResponse(headers=SSE_HEADERS)
        try:
            await resp.prepare(request)
            async with contextlib.aclosing(body):
                async for event in body:
                    await _write(request, resp, event)
            if call.reply.drop_after is not None:
                raise Dropped
            for event in tail():
                await _write(request, resp, event)
            await resp.write_eof()
            self._update(record, finished=True)
        except Dropped:
            _abort(request)
        except (ClientGone, ConnectionError):
            logger.info(
                "standin: client closed %s after %d tokens", request.path, record.tokens_sent
            )
            self._update(record, stream_closed_early=True)
        return resp

    async def _text_tokens(self, call: Call) -> AsyncIterator[str]:
        """The text tokens, paced; stamped when sent, counted, and cut at ``drop_after``."""
        reply = call.reply
        for i in range(len(call.tokens)):
            if i == reply.drop_after:
                raise Dropped
            await call.pace()
            if reply.stamp_tokens:
                call.tokens[i] = stamp_token(i)
            yield call.tokens[i]
            self._update(call.record, tokens_sent=i + 1)  # resumed once it was written
        if reply.drop_after is not None:
            raise Dropped

    async def _plain(self, call: Call, data: Body, tokens: int = 0) -> web.StreamResponse:
        """A JSON answer, after the time generating ``tokens`` would take at ``reply.tps``."""
        if call.reply.tps:
            await asyncio.sleep(tokens / call.reply.tps)
        if call.reply.drop_after is not None:  # no partial JSON: just hang up
            _abort(call.request)
            return web.Response()
        self._update(call.record, tokens_sent=tokens, finished=True)
        return web.json_response(data)

    # ------------------------------------------------------------------ endpoints
    async def _responses(self, call: Call) -> web.StreamResponse:
        body, reply, tokens = call.body, call.reply, call.tokens
        resp_id, created = "resp_" + uuid.uuid4().hex, int(time.time())
        summary = {"type": "summary_text", "text": reply.reasoning or ""}
        reasoning = {"id": "rs_" + uuid.uuid4().hex, "type": "reasoning", "summary": [summary]}
        calls = [
            {
                "id": "fc_" + uuid.uuid4().hex, "type": "function_call", "status": "completed",
                "call_id": c.call_id, "name": c.name, "arguments": c.arguments,
            }
            for c in call.tool_calls
        ]  # fmt: skip
        part = {"type": "output_text", "text": "".join(tokens), "annotations": [], "logprobs": []}
        message = {
            "id": "msg_" + uuid.uuid4().hex,
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [part],
        }
        output = [reasoning] if reply.reasoning_pieces() else []
        output += [*calls, *([message] if call.has_message else [])]
        n_in = _count_tokens(body.get("input"), body.get("instructions"))
        n_out = call.output_tokens()
        usage = {
            "input_tokens": n_in, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": n_out,
            "output_tokens_details": {"reasoning_tokens": len(reply.reasoning_pieces())},
            "total_tokens": n_in + n_out,
        }  # fmt: skip

        def response(status: str, output: list[Any], usage: Any) -> Body:
            return {
                "id": resp_id, "object": "response", "created_at": created, "status": status,
                "model": body.get("model", "gpt-standin"), "output": output, "usage": usage,
                "instructions": body.get("instructions"), "metadata": body.get("metadata") or {},
                "parallel_tool_calls": body.get("parallel_tool_calls", True),
                "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
                "temperature": 1.0, "top_p": 1.0, "error": None, "incomplete_details": None,
                "truncation": "disabled", "previous_response_id": body.get("previous_response_id"),
                "background": False, "text": {"format": {"type": "text"}},
                "store": bool(body.get("store", True)),
            }  # fmt: skip

        if not call.record.stream:
            return await self._plain(call, response("completed", output, usage), n_out)
        seq = iter(range(1 << 62))

        def event(kind: str, **data: Any) -> bytes:
            data = {"type": kind, "sequence_number": next(seq), **data}
            return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()

        def added(index: int, item: Body) -> bytes:
            return event("response.output_item.added", output_index=index, item=item)

        def done(index: int, item: Body) -> bytes:
            return event("response.output_item.done", output_index=index, item=item)

        async def reasoning_events(index: int) -> AsyncIterator[bytes]:
            at = {"item_id": reasoning["id"], "output_index": index, "summary_index": 0}
            yield added(index, {**reasoning, "summary": []})
            yield event("response.reasoning_summary_part.added", **at, part={**summary, "text": ""})
            for piece in reply.reasoning_pieces():
                await call.pace()
                yield event("response.reasoning_summary_text.delta", **at, delta=piece)
            yield event("response.reasoning_summary_text.done", **at, text=summary["text"])
            yield event("response.reasoning_summary_part.done", **at, part=summary)
            yield done(index, reasoning)

        async def function_call_events(
            index: int, item: Body, tool_call: ToolCall
        ) -> AsyncIterator[bytes]:
            at = {"item_id": item["id"], "output_index": index}
            yield added(index, {**item, "arguments": "", "status": "in_progress"})
            for piece in tool_call.chunks():
                await call.pace()
                yield event("response.function_call_arguments.delta", **at, delta=piece)
            yield event("response.function_call_arguments.done", **at, arguments=item["arguments"])
            yield done(index, item)

        async def message_events(index: int) -> AsyncIterator[bytes]:
            at = {"item_id": message["id"], "output_index": index, "content_index": 0}
            yield added(index, {**message, "status": "in_progress", "content": []})
            yield event("response.content_part.added", **at, part={**part, "text": ""})
            async for token in self._text_tokens(call):
                yield event("response.output_text.delta", **at, delta=token, logprobs=[])
            yield event("response.output_text.done", **at, text=_sent_text(call, part), logprobs=[])
            yield event("response.content_part.done", **at, part=part)
            yield done(index, message)

        async def events() -> AsyncIterator[bytes]:  # lazy, so sequence numbers keep order
            yield event("response.created", response=response("in_progress", [], None))
            yield event("response.in_progress", response=response("in_progress", [], None))
            items: list[AsyncIterator[bytes]] = []
            if reply.reasoning_pieces():
                items.append(reasoning_events(len(items)))
            for item, tool_call in zip(calls, call.tool_calls, strict=True):
                items.append(function_call_events(len(items), item, tool_call))
            if call.has_message:
                items.append(message_events(len(items)))
            for item_events in items:
                async for data in item_events:
                    yield data

        return await self._stream(
            call,
            events(),
            lambda: [event("response.completed", response=response("completed", output, usage))],
        )

    async def _chat_completions(self, call: Call) -> web.StreamResponse:
        body, reply, tokens = call.body, call.reply, call.tokens
        n_in, n_out = _count_tokens(body.get("messages")), call.output_tokens()
        usage = {
            "prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out,
            "completion_tokens_details": {"reasoning_tokens": len(reply.reasoning_pieces())},
        }  # fmt: skip
        base = {
            "id": "chatcmpl-" + uuid.uuid4().hex, "created": int(time.time()),
            "model": body.get("model", "gpt-standin"), "system_fingerprint": None,
        }  # fmt: skip
        calls = [
            {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in call.tool_calls
        ]  # fmt: skip
        finish = "tool_calls" if calls else "stop"
        if not call.record.stream:
            content = "".join(tokens) if call.has_message else None
            message: Body = {"role": "assistant", "content": content, "refusal": None}
            if calls:
                message["tool_calls"] = calls
            if reply.reasoning:
                message["reasoning_content"] = reply.reasoning
            choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
            data = {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
            return await self._plain(call, data, n_out)

        def chunk(delta: Body | None, finish: str | None = None, **extra: Any) -> bytes:
            choices = (
                []
                if delta is None
                else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
            )
            data = {**base, "object": "chat.completion.chunk", "choices": choices, **extra}
            return f"data: {json.dumps(data)}\n\n".encode()

        tail = [chunk({}, finish)]
        if (body.get("stream_options") or {}).get("include_usage"):
            tail.append(chunk(None, usage=usage))
        tail.append(b"data: [DONE]\n\n")

        async def events() -> AsyncIterator[bytes]:
            text_first = not reply.reasoning_pieces() and not calls
            yield chunk({"role": "assistant", "content": "" if text_first else None})
            for piece in reply.reasoning_pieces():
                await call.pace()
                yield chunk({"reasoning_content": piece})
            for index, (spec, tool_call) in enumerate(zip(calls, call.tool_calls, strict=True)):
                named = {**spec, "function": {**spec["function"], "arguments": ""}}
                yield chunk({"tool_calls": [{"index": index, **named}]})
                for piece in tool_call.chunks():
                    await call.pace()
                    yield chunk(
                        {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                    )
            async for token in self._text_tokens(call):
                yield chunk({"content": token})

        return await self._stream(call, events(), lambda: tail)

    async def _chatkit_create(self, call: Call) -> web.StreamResponse:
        body = call.body
        workflow, config = body.get("workflow") or {}, body.get("chatkit_configuration") or {}
        per_minute = (body.get("rate_limits") or {}).get("max_requests_per_1_minute", 10)
        session = {
            "id": "cksess_" + uuid.uuid4().hex, "object": "chatkit.session", "status": "active",
            "client_secret": "ek_" + uuid.uuid4().hex, "user": body.get("user", ""),
            "expires_at": int(time.time()) + (body.get("expires_after") or {}).get("seconds", 600),
            "workflow": {
                "id": workflow.get("id", ""), "version": workflow.get("version"),
                "state_variables": workflow.get("state_variables"),
                "tracing": {"enabled": (workflow.get("tracing") or {}).get("enabled", True)},
            },
            "chatkit_configuration": {
                "automatic_thread_titling": {"enabled": True, **config.get("automatic_thread_titling", {})},
                "file_upload": {"enabled": False, "max_file_size": 512, "max_files": 10, **config.get("file_upload", {})},
                "history": {"enabled": True, "recent_threads": None, **config.get("history", {})},
            },
            "rate_limits": {"max_requests_per_1_minute": per_minute},
            "max_requests_per_1_minute": per_minute,
        }  # fmt: skip
        with self._cond:
            self._sessions[session["id"]] = session
        return await self._plain(call, session)

    async def _chatkit_cancel(self, call: Call) -> web.StreamResponse:
        with self._cond:
            session = self._sessions.get(call.request.match_info["session_id"])
            if session is not None:
                session["status"] = "cancelled"
        if session is None:
            return error_response(404, "No ChatKit session found with that id.")
        return await self._plain(call, session)

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        self._update(await self._record(request), done=True)
        return error_response(404, f"Invalid URL ({request.method} {request.path})")

    # ------------------------------------------------------------------ control API
    async def _control_script(self, request: web.Request) -> web.StreamResponse:
        try:
            data = await request.json()
            replies = [Reply(**r) for r in data.get("replies", [])]
            default = Reply(**data["default"]) if data.get("default") else None
        except (ValueError, TypeError, AttributeError) as exc:
            return error_response(400, f"bad control request: {exc}")
        self.script(*replies)
        if default is not None:
            self.default_reply = default
        return web.json_response({"queued": len(replies)})

    async def _control_reset(self, request: web.Request) -> web.StreamResponse:
        self.reset()
        return web.json_response({"ok": True})

    async def _control_requests(self, request: web.Request) -> web.StreamResponse:
        with self._cond:
            return web.json_response([dataclasses.asdict(r) for r in self._requests])


async def _write(request: web.Request, resp: web.StreamResponse, data: bytes) -> None:
    """One write per event; refuse once the client's side of the connection is gone."""
    if request.transport is None or request.transport.is_closing():
        raise ClientGone
    await resp.write(data)


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


def _pick(reqs: list[RecordedRequest], index: int, attr: str) -> RecordedRequest | None:
    if not -len(reqs) <= index < len(reqs):
        return None
    return reqs[index] if getattr(reqs[index], attr) else None


def stamp_token(index: int) -> str:
    """A `stamp_tokens` token: its index and the wall-clock time it was generated."""
    return f"{index}:{time.time():.6f} "


def _sent_text(call: Call, part: Body) -> str:
    """The reply text as actually sent (stamped tokens change while streaming)."""
    part["text"] = "".join(call.tokens)
    return part["text"]


def _count_tokens(*parts: Any) -> int:
    return max(1, len(TOKEN_RE.findall(json.dumps([p for p in parts if p is not None]))))


def error_response(status: int, message: str) -> web.Response:
    kind, code = ERROR_KINDS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.json_response(body, status=status)


# ---------------------------------------------------------------------- other processes
def _control(base_url: str, path: str, payload: Any = None) -> Any:
    url = base_url.rstrip("/").removesuffix("/v1") + path
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def control_script(
    base_url: str, *replies: Reply | Body, default: Reply | Body | None = None
) -> Any:
    """Queue replies on a stand-in server (possibly in another process)."""

    def as_dict(reply: Reply | Body) -> Body:
        return reply if isinstance(reply, dict) else dataclasses.asdict(reply)

    payload: Body = {"replies": [as_dict(r) for r in replies]}
    if default is not None:
        payload["default"] = as_dict(default)
    return _control(base_url, "/_control/script", payload)


def control_reset(base_url: str) -> Any:
    return _control(base_url, "/_control/reset", {})


def control_requests(base_url: str) -> list[Body]:
    return _control(base_url, "/_control/requests")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Stand-in OpenAI API server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--text", default=DEFAULT_TEXT, help="default reply text")
    parser.add_argument("--tps", type=float, default=0, help="tokens per second (0 = unpaced)")
    parser.add_argument("--first-token-delay", type=float, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    default = Reply(text=args.text, tps=args.tps, first_token_delay=args.first_token_delay)
    server = StandinServer(args.host, args.port, default_reply=default)
    print(f"standin listening on {server.start()}", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop()


if __name__ == "__main__":
    main()
