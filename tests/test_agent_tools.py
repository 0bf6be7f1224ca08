"""The agent's tools and reasoning, live: two daphne workers sharing Redis and PostgreSQL,
the model behind the stand-in (which streams function calls and reasoning summaries in
the Responses and Chat Completions formats), tools from `AGENT_TOOLS` and from an MCP
server the tests start. Tool events are numbered in the run's log like its text: they
resume, cross workers and are stored with the reply."""

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from streaming.models import Message
from tests.conftest import ROOT, DaphneServer, daphne_env, ended_reply, free_port, guest_session
from tests.sse import follow_sse, parse_sse
from tests.standin import Reply, StandinServer, ToolCall

pytestmark = pytest.mark.django_db(transaction=True)

TOOLS = "tests.agent_tools.nap,tests.agent_tools.explode,tests.agent_tools.echo,streaming.tools.current_time,streaming.tools.calculate"
TOOL_TIMEOUT = 2.0
ANSWER = "Paris is one hour ahead of UTC — 🕐 so it is " + " ".join(f"w{i}" for i in range(40)) + "."


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    """A small MCP server (tests/mcp_server.py: `add`, `shout`) over streamable HTTP."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.mcp_server", "--port", str(port)], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline and process.poll() is None, "the MCP server did not start"
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)


def worker_env(standin_server: StandinServer, redis_url: str, mcp_url: str, **overrides: str) -> dict[str, str]:
    return daphne_env(
        REDIS_URL=redis_url, OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=standin_server.base_url,
        AGENT_MODEL="gpt-test", AGENT_TOOLS=TOOLS, AGENT_MCP_SERVERS=mcp_url,
        AGENT_TOOL_TIMEOUT_SECONDS=str(TOOL_TIMEOUT), STREAM_IDLE_CHECK_SECONDS="1", **overrides,
    )


@pytest.fixture(scope="module")
def workers(django_db_setup, django_db_blocker, standin_server, redis_url, mcp_url) -> Iterator[list[DaphneServer]]:
    with django_db_blocker.unblock():
        env = worker_env(standin_server, redis_url, mcp_url)
    servers = [DaphneServer(env), DaphneServer(env)]
    yield servers
    for server in servers:
        server.stop()


@dataclass
class Site:
    a: DaphneServer
    b: DaphneServer
    cookies: httpx.Cookies = field(default_factory=httpx.Cookies)
    headers: dict[str, str] = field(default_factory=dict)

    def client(self, server: DaphneServer | None = None) -> httpx.AsyncClient:
        url = (server or self.a).url
        headers = {k: v for k, v in self.headers.items() if k.lower() != "origin"}
        headers["Origin"] = url  # the page a request comes from is its own
        return httpx.AsyncClient(base_url=url, cookies=self.cookies, headers=headers, timeout=30)


@pytest.fixture
def site(workers, standin, transactional_db) -> Site:
    session = guest_session(workers[0].url)
    return Site(a=workers[0], b=workers[1], cookies=session.cookies, headers=dict(session.headers))


async def send(site: Site, message: str, thread_id: str | None = None) -> dict:
    async with site.client() as http:
        if thread_id is None:
            thread_id = (await http.post("/api/threads", json={})).json()["id"]
        response = await http.post(f"/api/threads/{thread_id}/messages", json={"message": message})
        assert response.status_code == 201, response.text
        return response.json()


async def events(
    site: Site, run_id: str, *, server: DaphneServer | None = None, after: int = 0,
    until: Callable[[dict, list[dict]], bool] | None = None,
) -> list[dict]:
    """The run's events over SSE after `after`, to the end (or until `until(event, got)`)."""
    async with site.client(server) as http:
        return await follow_sse(http, run_id, after=after, until=until)


def kinds(got: list[dict]) -> list[str]:
    """The event types in order, runs of the same type as one, metrics left out."""
    out: list[str] = []
    for event in got:
        if event["type"] != "metrics" and (not out or out[-1] != event["type"]):
            out.append(event["type"])
    return out


def text_of(got: list[dict], kind: str = "delta") -> str:
    return "".join(e["text"] for e in got if e["type"] == kind)


def contiguous(got: list[dict]) -> bool:
    return [e["seq"] for e in got] == list(range(1, len(got) + 1))


def function_items(request_input: list[dict]) -> list[dict]:
    return [i for i in request_input if isinstance(i, dict) and i.get("type", "").startswith("function_call")]


async def test_a_tool_call_runs_and_the_follow_up_streams_the_answer_stored_with_its_steps(site, standin) -> None:
    call = ToolCall("current_time", '{"timezone": "Europe/Paris"}', pieces=['{"time', 'zone": "Eur', 'ope/Paris"}'])
    standin.script(
        Reply(text="", reasoning="The user wants the time in Paris. I should ask the clock.", tool_calls=[call], tps=200),
        Reply(text=ANSWER, tps=200),
    )
    started = await send(site, "What time is it in Paris?")
    got = await events(site, started["run_id"])

    assert contiguous(got)
    assert kinds(got) == ["started", "reasoning", "tool_call", "tool_arguments", "tool_result", "delta", "completed"]
    assert text_of(got, "reasoning") == "The user wants the time in Paris. I should ask the clock."
    (called,) = [e for e in got if e["type"] == "tool_call"]
    assert called["call_id"] == call.call_id and called["name"] == "current_time"
    assert [e["text"] for e in got if e["type"] == "tool_arguments"] == call.pieces
    (result,) = [e for e in got if e["type"] == "tool_result"]
    assert result["call_id"] == call.call_id and not result["error"] and not result["truncated"]
    assert result["output"].endswith("in Europe/Paris") and ("CET" in result["output"] or "CEST" in result["output"])
    assert text_of(got) == ANSWER

    reply = await ended_reply(started["run_id"])
    assert reply.status == "completed" and reply.content == ANSWER
    assert reply.steps == [
        {"type": "reasoning", "text": "The user wants the time in Paris. I should ask the clock."},
        {
            "type": "tool", "call_id": call.call_id, "name": "current_time", "arguments": call.arguments,
            "output": result["output"], "error": False, "truncated": False,
        },
    ]
    # The follow-up model call carried the call and the tool's output.
    first, second = standin.requests
    assert {t["name"] for t in first.json["tools"]} >= {"current_time", "calculate", "nap", "add", "shout"}
    sent = [
        {k: v for k, v in i.items() if k in ("type", "call_id", "name", "arguments", "output")}
        for i in function_items(second.json["input"])
    ]
    assert sent == [
        {"type": "function_call", "call_id": call.call_id, "name": "current_time", "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": result["output"]},
    ]

    # The next turn gives the model the call and its result again, before the reply's text.
    standin.script(Reply(text="Still Paris.", tps=200))
    later = await send(site, "And now?", thread_id=started["thread_id"])
    await events(site, later["run_id"])
    history = standin.requests[-1].json["input"]
    assert [i.get("type") or i["role"] for i in history] == [
        "user", "function_call", "function_call_output", "assistant", "user",
    ]
    assert history[1]["call_id"] == history[2]["call_id"] == call.call_id
    assert history[2]["output"] == result["output"] and history[3]["content"] == ANSWER

    async with site.client() as http:
        listed = (await http.get(f"/api/threads/{started['thread_id']}/messages")).json()["messages"]
    assert listed[1]["steps"] == reply.steps


async def test_chat_completions_models_stream_tool_calls_and_reasoning_too(
    daphne_server, standin, redis_url, mcp_url
) -> None:
    server = DaphneServer(worker_env(standin, redis_url, mcp_url, AGENT_API="chat_completions"))
    try:
        session = guest_session(server.url)
        site = Site(a=server, b=server, cookies=session.cookies, headers=dict(session.headers))
        call = ToolCall("calculate", '{"expression": "6 * 7"}')
        standin.script(
            Reply(text="", reasoning="Multiply.", tool_calls=[call], tps=200), Reply(text="It is 42.", tps=200)
        )
        started = await send(site, "What is 6 * 7?")
        got = await events(site, started["run_id"])
        assert contiguous(got)
        assert kinds(got) == ["started", "reasoning", "tool_call", "tool_arguments", "tool_result", "delta", "completed"]
        assert text_of(got, "reasoning") == "Multiply."
        assert text_of(got, "tool_arguments") == call.arguments
        (result,) = [e for e in got if e["type"] == "tool_result"]
        assert result["output"] == "6 * 7 = 42" and result["call_id"] == call.call_id
        assert text_of(got) == "It is 42." == (await ended_reply(started["run_id"])).content
        tool_message = standin.requests[1].json["messages"][-1]
        assert tool_message == {"role": "tool", "tool_call_id": call.call_id, "content": "6 * 7 = 42"}
    finally:
        server.stop()


async def test_a_client_that_drops_mid_tool_call_resumes_on_either_worker_with_nothing_lost_or_repeated(
    site, standin
) -> None:
    call = ToolCall("nap", '{"seconds": 1}')
    standin.script(Reply(text="", reasoning="Wait a moment.", tool_calls=[call], tps=100), Reply(text=ANSWER, tps=150))
    started = await send(site, "Take a nap")
    run_id = started["run_id"]

    def tool_running(event: dict, got: list[dict]) -> bool:  # the arguments are complete
        return text_of(got, "tool_arguments") == call.arguments

    whole, head = await asyncio.gather(
        events(site, run_id, server=site.b),  # a second worker follows the same run, from the start
        events(site, run_id, until=tool_running),
    )
    assert head[-1]["type"] == "tool_arguments"
    tail = await events(site, run_id, server=site.b, after=head[-1]["seq"])
    assert tail[0]["seq"] == head[-1]["seq"] + 1
    assert head + tail == whole and contiguous(whole)
    assert [e["output"] for e in whole if e["type"] == "tool_result"] == ["Slept 1 s."]
    assert text_of(whole) == ANSWER == (await ended_reply(run_id)).content


async def test_a_tool_that_raises_or_times_out_gives_the_model_an_error_result_and_the_reply_completes(
    site, standin
) -> None:
    failing = ToolCall("explode", '{"reason": "disk on fire"}')
    slow = ToolCall("nap", '{"seconds": 30}')
    standin.script(Reply(text="", tool_calls=[failing, slow]), Reply(text="Both tools failed, sorry.", tps=200))
    started = await send(site, "Try the tools")
    got = await events(site, started["run_id"])
    results = {e["call_id"]: e for e in got if e["type"] == "tool_result"}
    assert results[failing.call_id]["error"] and results[slow.call_id]["error"]
    assert results[failing.call_id]["output"] == "An error occurred while running the tool. Please try again."
    assert results[slow.call_id]["output"] == f"Tool 'nap' timed out after {TOOL_TIMEOUT:g} seconds."
    assert got[-1]["type"] == "completed" and text_of(got) == "Both tools failed, sorry."
    outputs = {i["call_id"]: i["output"] for i in function_items(standin.requests[1].json["input"]) if "output" in i}
    assert outputs == {c: results[c]["output"] for c in (failing.call_id, slow.call_id)}
    reply = await ended_reply(started["run_id"])
    assert [s["error"] for s in reply.steps] == [True, True]


async def test_stop_during_a_tool_call_stops_the_run_and_no_follow_up_is_made(site, standin) -> None:
    call = ToolCall("nap", '{"seconds": 25}')
    standin.script(Reply(text="", tool_calls=[call]), Reply(text="never sent"))
    started = await send(site, "Nap for a long time")
    run_id = started["run_id"]
    head = await events(site, run_id, until=lambda e, got: text_of(got, "tool_arguments") == call.arguments)
    async with site.client(site.b) as http:  # stopped from the other worker
        assert (await http.post(f"/api/runs/{run_id}/stop", json={})).status_code == 202
    tail = await events(site, run_id, after=head[-1]["seq"])
    assert tail[-1]["type"] == "stopped"
    assert [e for e in tail if e["type"] == "tool_result"] == []  # the nap was cancelled, not awaited
    reply = await ended_reply(run_id)
    assert reply.status == "stopped"
    assert reply.steps == [{
        "type": "tool", "call_id": call.call_id, "name": "nap", "arguments": call.arguments, "output": None,
        "error": False, "truncated": False,
    }]
    assert len(standin.requests) == 1  # no follow-up model call


async def test_stop_while_the_model_writes_a_call_closes_the_model_stream(site, standin) -> None:
    call = ToolCall("echo", json.dumps({"text": "x" * 400}), pieces=[json.dumps({"text": "x" * 400})[i:i + 10] for i in range(0, 412, 10)])
    standin.script(Reply(text="", tool_calls=[call], tps=10))
    started = await send(site, "Echo a lot")
    run_id = started["run_id"]
    await events(site, run_id, until=lambda e, got: e["type"] == "tool_arguments")
    async with site.client() as http:
        await http.post(f"/api/runs/{run_id}/stop", json={})
    record = standin.wait_closed_early(0, timeout=10)
    assert record.stream_closed_early and not record.finished
    assert (await ended_reply(run_id, timeout=10)).status == "stopped"


async def test_an_mcp_servers_tool_runs_end_to_end(site, standin) -> None:
    call = ToolCall("add", '{"a": 2, "b": 40}')
    standin.script(Reply(text="", tool_calls=[call]), Reply(text="The sum is 42.", tps=200))
    started = await send(site, "Add 2 and 40")
    got = await events(site, started["run_id"])
    (result,) = [e for e in got if e["type"] == "tool_result"]
    assert result["output"] == "42" and not result["error"]
    assert text_of(got) == "The sum is 42."
    assert function_items(standin.requests[1].json["input"])[1]["output"] == "42"


async def test_tool_output_is_kept_verbatim_for_clients_to_show_as_text(site, standin) -> None:
    markup = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    call = ToolCall("echo", json.dumps({"text": markup}))
    standin.script(Reply(text="", tool_calls=[call]), Reply(text="Done."))
    started = await send(site, "Echo markup")
    got = await events(site, started["run_id"])
    assert [e["output"] for e in got if e["type"] == "tool_result"] == [markup]
    assert (await ended_reply(started["run_id"])).steps[0]["output"] == markup


async def test_the_seed_endpoints_stay_text_only(site, standin) -> None:
    standin.script(
        Reply(text="", reasoning="Hmm.", tool_calls=[ToolCall("calculate", '{"expression": "1 + 1"}')]),
        Reply(text="Two.", tps=200),
    )
    async with site.client() as http, http.stream("POST", "/api/stream/message", json={"message": "1 + 1?"}) as response:
        body = "".join([chunk async for chunk in response.aiter_text()])
    shapes = [e["data"] for e in parse_sse(body)]
    assert {e["type"] for e in shapes} & {"reasoning", "tool_call", "tool_arguments", "tool_result"} == set()
    assert shapes[-1]["type"] == "completed"
    assert "".join(e["token"] for e in shapes if e["type"] == "token") == "Two."


async def test_the_offline_model_demonstrates_a_tool_call(daphne_server, redis_url) -> None:
    server = daphne_server(REDIS_URL=redis_url)  # no OPENAI_API_KEY: the offline model, built-in tools
    session = guest_session(server.url)
    site = Site(a=server, b=server, cookies=session.cookies, headers=dict(session.headers))
    started = await send(site, "What time is it?")
    got = await events(site, started["run_id"])
    assert kinds(got) == ["started", "reasoning", "tool_call", "tool_arguments", "tool_result", "delta", "completed"]
    (called,) = [e for e in got if e["type"] == "tool_call"]
    assert called["name"] == "current_time" and text_of(got, "tool_arguments") == '{"timezone": "UTC"}'
    (result,) = [e for e in got if e["type"] == "tool_result"]
    assert result["output"].endswith("in UTC")
    assert result["output"] in text_of(got)
    reply = await Message.objects.aget(pk=started["run_id"])
    assert [s["type"] for s in reply.steps] == ["reasoning", "tool"]
