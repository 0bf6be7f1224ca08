"""ChatKit: session tokens minted through the stand-in OpenAI server, and the self-hosted
ChatKit endpoint on this project's threads, messages and runs."""

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest
from django.test import AsyncClient

from streaming.models import Message, Thread, User
from tests.conftest import free_port, guest_session
from tests.seed_clients import pieces
from tests.standin import Reply

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("run_cleanup")]

TEXT = "Grüße — 世界 🎉! " + " ".join(f"word{i}" for i in range(30))


@pytest.fixture
def hosted(standin, settings):
    settings.CHATKIT_WORKFLOW_ID = "wf_test"
    settings.CHATKIT_SESSIONS_RATE = "100/m"
    return standin


async def member(name: str) -> tuple[AsyncClient, User]:
    user = await User.objects.acreate_user(username=name, password="pw-12345678")
    client = AsyncClient()
    await client.aforce_login(user)
    return client, user


def chatkit_calls(standin, kind: str) -> list[Any]:
    return [r for r in standin.requests if r.path.startswith("/v1/chatkit/sessions") and kind in r.path]


# Session tokens (hosted workflows).


async def test_session_is_minted_for_the_logged_in_user_whatever_the_body_says(hosted) -> None:
    client, user = await member("ann")
    response = await client.post(
        "/api/chatkit/session", data={"user_id": "someone-else"}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"client_secret", "expires_at"}
    assert body["client_secret"].startswith("ek_") and isinstance(body["expires_at"], int)
    [create] = chatkit_calls(hosted, "sessions")
    assert create.json == {"user": str(user.pk), "workflow": {"id": "wf_test"}}
    assert create.headers["authorization"] == "Bearer sk-test"


async def test_guests_get_sessions_of_their_own(hosted) -> None:
    ann, bob = AsyncClient(), AsyncClient()
    for client in (ann, bob):
        assert (await client.post("/api/chatkit/session")).status_code == 200
    users = [r.json["user"] for r in chatkit_calls(hosted, "sessions")]
    guests = [str(pk) async for pk in User.objects.filter(is_guest=True).order_by("date_joined").values_list("pk", flat=True)]
    assert users == guests and len(set(users)) == 2


async def test_refresh_returns_a_new_secret_for_the_same_user_and_ends_the_old_session(hosted) -> None:
    client, user = await member("ann")
    old = (await client.post("/api/chatkit/session")).json()["client_secret"]
    response = await client.post("/api/chatkit/refresh", data={"token": old}, content_type="application/json")
    assert response.status_code == 200, response.content
    new = response.json()["client_secret"]
    assert new.startswith("ek_") and new != old
    creates = [r for r in chatkit_calls(hosted, "sessions") if r.path == "/v1/chatkit/sessions"]
    assert [r.json["user"] for r in creates] == [str(user.pk)] * 2
    [cancel] = [r for r in hosted.requests if r.path.endswith("/cancel")]
    assert cancel.method == "POST"


async def test_refresh_never_touches_another_users_session(hosted) -> None:
    ann, _ = await member("ann")
    bob, bob_user = await member("bob")
    anns = (await ann.post("/api/chatkit/session")).json()["client_secret"]
    response = await bob.post("/api/chatkit/refresh", data={"token": anns}, content_type="application/json")
    assert response.status_code == 200
    assert hosted.requests[-1].json["user"] == str(bob_user.pk)
    assert not [r for r in hosted.requests if r.path.endswith("/cancel")]


async def test_refresh_needs_a_token(hosted) -> None:
    client, _ = await member("ann")
    for body in ({}, {"token": 5}, {"token": ""}):
        response = await client.post("/api/chatkit/refresh", data=body, content_type="application/json")
        assert response.status_code == 400
        assert response.json() == {"error": "'token' must be the client secret to refresh."}
    assert (await client.post("/api/chatkit/refresh", data=b"{", content_type="application/json")).status_code == 400
    assert chatkit_calls(hosted, "sessions") == []


@pytest.mark.parametrize(
    ("workflow", "key", "missing"),
    [("", "sk-test", "CHATKIT_WORKFLOW_ID"), ("wf_test", "", "OPENAI_API_KEY"),
     ("", "", "CHATKIT_WORKFLOW_ID and OPENAI_API_KEY")],
)
async def test_missing_configuration_is_a_clear_503(standin, settings, workflow, key, missing, caplog) -> None:
    settings.CHATKIT_WORKFLOW_ID, settings.OPENAI_API_KEY = workflow, key
    client, _ = await member("ann")
    for url, body in (("/api/chatkit/session", {}), ("/api/chatkit/refresh", {"token": "ek_1"})):
        caplog.clear()
        response = await client.post(url, data=body, content_type="application/json")
        assert response.status_code == 503
        assert response.json() == {"error": f"ChatKit sessions are not configured: set {missing}."}
        # An expected refusal: logged once, as a warning.
        logged = [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]
        assert logged == [("WARNING", f"ChatKit session refused ({url}): ChatKit sessions are not configured: set {missing}.")]
    assert standin.requests == []


async def test_upstream_errors_are_a_clear_502(hosted, settings) -> None:
    client, _ = await member("ann")
    hosted.script(Reply(error_status=500, error_message="The workflow is broken."))
    response = await client.post("/api/chatkit/session")
    assert response.status_code == 502
    assert response.json() == {
        "error": "The ChatKit session could not be created (OpenAI answered 500: The workflow is broken.)."
    }
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    response = await client.post("/api/chatkit/session")
    assert response.status_code == 502
    assert response.json() == {"error": "The ChatKit session could not be created (OpenAI could not be reached)."}


async def test_sessions_are_rate_limited_per_user(hosted, settings) -> None:
    settings.CHATKIT_SESSIONS_RATE = "2/m"
    ann, _ = await member("ann")
    bob, _ = await member("bob")
    statuses = [(await ann.post("/api/chatkit/session")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = await ann.post("/api/chatkit/refresh", data={"token": "ek_x"}, content_type="application/json")
    assert limited.status_code == 429 and limited["Retry-After"] == "60"
    assert limited.json() == {"error": "Too many ChatKit sessions requested; try again in a minute."}
    assert (await bob.post("/api/chatkit/session")).status_code == 200
    assert len(chatkit_calls(hosted, "sessions")) == 3


async def test_sessions_need_a_user(hosted, settings) -> None:
    settings.CHAT_ALLOW_GUESTS = False
    response = await AsyncClient().post("/api/chatkit/session")
    assert response.status_code == 401 and response.json() == {"error": "Log in to chat."}


def test_the_seed_client_posting_bare_bodies_works_and_cross_site_posts_do_not(hosted) -> None:
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    assert client.get("/").status_code == 200  # a guest session
    # The seed's fetch: POST, no body, no content type; the browser adds Origin.
    same = client.post("/api/chatkit/session", headers={"Origin": "http://testserver"})
    assert same.status_code == 200 and same.json()["client_secret"].startswith("ek_")
    refresh = client.post(
        "/api/chatkit/refresh", data=json.dumps({"token": same.json()["client_secret"]}),
        content_type="text/plain;charset=UTF-8", headers={"Origin": "http://testserver"},
    )
    assert refresh.status_code == 200
    forged = client.post("/api/chatkit/session", headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403


# The self-hosted ChatKit endpoint.


def user_input(text: str) -> dict[str, Any]:
    return {"content": [{"type": "input_text", "text": text}], "attachments": [], "inference_options": {}}


async def chatkit(client: AsyncClient, kind: str, **params: Any) -> tuple[int, Any]:
    response = await client.post(
        "/chatkit", data=json.dumps({"type": kind, "params": params}), content_type="application/json"
    )
    if response.streaming:
        assert response["Content-Type"] == "text/event-stream"
        raw = b"".join(await pieces(response)).decode()
        events = [json.loads(line[6:]) for line in raw.split("\n\n") if line.startswith("data: ")]
        return response.status_code, events
    return response.status_code, json.loads(response.content)


def streamed_text(events: list[dict[str, Any]]) -> str:
    return "".join(
        e["update"]["delta"] for e in events
        if e["type"] == "thread.item.updated" and e["update"]["type"] == "assistant_message.content_part.text_delta"
    )


async def test_creating_a_thread_streams_the_reply_and_persists_both_messages(standin) -> None:
    standin.script(Reply(text=TEXT))
    client, user = await member("ann")
    status, events = await chatkit(client, "threads.create", input=user_input("Hello there"))
    assert status == 200
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["thread.created", "thread.item.done", "stream_options"]
    thread_id = events[0]["thread"]["id"]
    user_item = events[1]["item"]
    assert user_item["type"] == "user_message" and user_item["content"][0]["text"] == "Hello there"
    assert streamed_text(events) == TEXT
    [done] = [e for e in events if e["type"] == "thread.item.done" and e["item"]["type"] == "assistant_message"]
    assert done["item"]["content"][0]["text"] == TEXT
    [updated] = [e for e in events if e["type"] == "thread.updated"]
    assert updated["thread"]["title"] == "Hello there"
    assert kinds[-1] == "thread.item.done"

    thread = await Thread.objects.aget(pk=thread_id)
    assert thread.owner_id == user.pk and thread.title == "Hello there"
    messages = [m async for m in thread.messages.order_by("created_at")]
    assert [(m.role, m.content, m.status) for m in messages] == [
        ("user", "Hello there", "completed"), ("assistant", TEXT, "completed"),
    ]
    assert str(messages[0].pk) == user_item["id"] and str(messages[1].pk) == done["item"]["id"]
    assert messages[1].token_count > 0 and messages[1].model_name == "gpt-test"
    assert standin.requests[-1].json["input"] == [{"role": "user", "content": "Hello there"}]


async def test_a_second_message_carries_the_history_and_threads_list_and_load(standin) -> None:
    standin.script(Reply(text="Paris."), Reply(text="About 2 million."))
    client, _ = await member("ann")
    _, events = await chatkit(client, "threads.create", input=user_input("Capital of France?"))
    thread_id = events[0]["thread"]["id"]
    status, events = await chatkit(client, "threads.add_user_message", thread_id=thread_id, input=user_input("Population?"))
    assert status == 200 and streamed_text(events) == "About 2 million."
    assert standin.requests[-1].json["input"] == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "Population?"},
    ]
    status, page = await chatkit(client, "threads.list", limit=10, order="desc")
    assert status == 200 and [t["id"] for t in page["data"]] == [thread_id]
    assert page["data"][0]["title"] == "Capital of France?"
    status, thread = await chatkit(client, "threads.get_by_id", thread_id=thread_id)
    assert status == 200
    texts = [(i["type"], i["content"][0]["text"]) for i in thread["items"]["data"]]
    assert texts == [
        ("user_message", "Capital of France?"), ("assistant_message", "Paris."),
        ("user_message", "Population?"), ("assistant_message", "About 2 million."),
    ]
    status, items = await chatkit(client, "items.list", thread_id=thread_id, limit=2, order="asc")
    assert [i["content"][0]["text"] for i in items["data"]] == ["Capital of France?", "Paris."]
    assert items["has_more"] is True
    status, rest = await chatkit(client, "items.list", thread_id=thread_id, limit=10, order="asc", after=items["after"])
    assert [i["content"][0]["text"] for i in rest["data"]] == ["Population?", "About 2 million."]
    # Renaming and deleting go to the same rows.
    status, _ = await chatkit(client, "threads.update", thread_id=thread_id, title="Paris facts")
    assert status == 200 and (await Thread.objects.aget(pk=thread_id)).title == "Paris facts"
    status, _ = await chatkit(client, "threads.delete", thread_id=thread_id)
    assert status == 200 and not await Thread.objects.filter(pk=thread_id).aexists()


async def test_threads_list_pages_through_only_the_requesters_threads(standin) -> None:
    ann, ann_user = await member("ann")
    bob, _ = await member("bob")
    mine = [str((await Thread.objects.acreate(owner=ann_user, title=f"t{i}")).pk) for i in range(5)]
    await chatkit(bob, "threads.create", input=user_input("Bob's"))
    seen, after = [], None
    while True:
        params = {"limit": 2, "order": "asc", **({"after": after} if after else {})}
        status, page = await chatkit(ann, "threads.list", **params)
        assert status == 200
        seen += [t["id"] for t in page["data"]]
        if not page["has_more"]:
            break
        after = page["after"]
    assert seen == mine


async def test_another_users_thread_is_not_found(standin) -> None:
    standin.script(Reply(text="Secret."))
    ann, _ = await member("ann")
    bob, _ = await member("bob")
    _, events = await chatkit(ann, "threads.create", input=user_input("Ann's question"))
    thread_id = events[0]["thread"]["id"]
    requests = len(standin.requests)
    for kind, params in [
        ("threads.get_by_id", {}), ("items.list", {}), ("threads.delete", {}),
        ("threads.update", {"title": "mine now"}),
        ("threads.add_user_message", {"input": user_input("Let me in")}),
    ]:
        status, body = await chatkit(bob, kind, thread_id=thread_id, **params)
        assert (status, body) == (404, {"error": "No such conversation."}), kind
    assert len(standin.requests) == requests  # no model call for Bob
    thread = await Thread.objects.aget(pk=thread_id)
    assert thread.title == "Ann's question" and await thread.messages.acount() == 2
    status, page = await chatkit(bob, "threads.list", limit=10, order="desc")
    assert page["data"] == []


async def test_bad_requests_get_clear_errors(standin) -> None:
    client, _ = await member("ann")
    response = await client.post("/chatkit", data=b"{not json", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"].startswith("Not a ChatKit request")
    status, body = await chatkit(client, "threads.explode")
    assert status == 400 and body["error"].startswith("Not a ChatKit request")
    status, body = await chatkit(client, "threads.get_by_id", thread_id="not-a-uuid")
    assert (status, body) == (404, {"error": "No such conversation."})
    status, body = await chatkit(client, "threads.create", input=user_input("   "))
    assert (status, body) == (400, {"error": "The message is empty."})
    status, body = await chatkit(client, "threads.create", input=user_input("x" * 40_000))
    assert (status, body) == (400, {"error": "The message is larger than the limit of 32768 bytes."})
    status, body = await chatkit(client, "threads.create", input=user_input("a NUL \x00 inside"))
    assert (status, body) == (400, {"error": "The message contains a NUL character (U+0000), which cannot be stored."})
    assert standin.requests == []
    assert (await AsyncClient().get("/chatkit")).status_code == 405
    # What this server does not offer is a clear 400, not a broken stream.
    with_file = {**user_input("See attached"), "attachments": ["atc_1"]}
    for kind, params, error in [
        ("threads.create", {"input": with_file}, "Attachments are not supported."),
        ("attachments.create", {"name": "a.png", "size": 3, "mime_type": "image/png"}, "Attachments are not supported."),
        ("attachments.delete", {"attachment_id": "atc_1"}, "Attachments are not supported."),
        ("input.transcribe", {"audio_base64": "AAAA", "mime_type": "audio/webm"}, "Dictation is not supported."),
    ]:
        status, body = await chatkit(client, kind, **params)
        assert (status, body) == (400, {"error": error}), kind
    assert await Thread.objects.acount() == 0


async def test_a_chatkit_reply_is_a_run_that_stops_from_the_native_api(standin) -> None:
    words = [f"w{i} " for i in range(400)]
    standin.script(Reply(tokens=words, tps=40))
    client, _ = await member("ann")
    body = {"type": "threads.create", "params": {"input": user_input("Count slowly")}}
    response = await client.post("/chatkit", data=json.dumps(body), content_type="application/json")
    events = []
    chunks = aiter(response.streaming_content)
    while streamed_text(events).count(" ") < 5:
        events.append(json.loads((await anext(chunks)).decode()[6:]))
    [added] = [e for e in events if e["type"] == "thread.item.added"]
    run_id = added["item"]["id"]
    stop = await client.post(f"/api/runs/{run_id}/stop", data={}, content_type="application/json")
    assert stop.status_code == 202
    events += [json.loads(chunk.decode()[6:]) async for chunk in chunks]
    [done] = [e for e in events if e["type"] == "thread.item.done" and e["item"]["type"] == "assistant_message"]
    text = streamed_text(events)
    assert done["item"]["content"][0]["text"] == text and 0 < len(text) < len("".join(words))
    reply = await Message.objects.aget(pk=run_id)
    assert (reply.status, reply.content) == ("stopped", text)


async def test_model_errors_end_the_stream_with_a_chatkit_error(standin) -> None:
    standin.script(Reply(error_status=500, error_message="Upstream exploded."))
    client, _ = await member("ann")
    _, events = await chatkit(client, "threads.create", input=user_input("Hi"))
    error = events[-1]
    assert error["type"] == "error" and error["allow_retry"] is True and "500" in error["message"]
    reply = await Message.objects.aget(role="assistant")
    assert reply.status == "failed"


async def test_a_cancelled_stream_stops_the_run_and_keeps_the_partial_reply(daphne_server, standin) -> None:
    words = [f"w{i} " for i in range(400)]
    standin.script(Reply(tokens=words, tps=40))
    server = daphne_server(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=standin.base_url, AGENT_MODEL="gpt-test")
    session = guest_session(server.url)
    body = {"type": "threads.create", "params": {"input": user_input("Count slowly")}}
    streamed = ""
    client = httpx.AsyncClient(base_url=server.url, cookies=session.cookies, headers=dict(session.headers), timeout=30)
    async with client, client.stream("POST", "/chatkit", json=body) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line[6:])
            if event["type"] == "thread.item.updated" and event["update"]["type"].endswith("text_delta"):
                streamed += event["update"]["delta"]
                if len(streamed) > 40:
                    break  # ChatKit's Stop: the client closes the stream
    standin.wait_closed_early(timeout=10)  # the model call was stopped, not left running
    reply = await _settled_reply()
    assert reply.status == "stopped"
    assert reply.content.startswith(streamed) and len(reply.content) < len("".join(words))
    assert reply.content == "".join(words)[: len(reply.content)]
    # The next message in the thread sees the partial reply as history.
    thread_id = str(reply.thread_id)
    standin.script(Reply(text="Continuing."))
    cont = {"type": "threads.add_user_message", "params": {"thread_id": thread_id, "input": user_input("Go on")}}
    response = session.post("/chatkit", json=cont)
    assert response.status_code == 200 and "Continuing." in response.text
    assert standin.requests[-1].json["input"][1] == {"role": "assistant", "content": reply.content}
    session.close()


async def test_open_chatkit_streams_hold_no_database_connections(daphne_server, standin) -> None:
    streams = 5
    words = [f"w{i} " for i in range(60)]
    standin.script(*[Reply(tokens=words, tps=20) for _ in range(streams)])  # 3 s each
    server = daphne_server(
        OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=standin.base_url, AGENT_MODEL="gpt-test",
        DATABASE_POOL_SIZE="2", DATABASE_POOL_TIMEOUT="1.5", CHAT_MAX_CONCURRENT_RUNS="10",
    )
    session = guest_session(server.url)
    client = httpx.AsyncClient(base_url=server.url, cookies=session.cookies, headers=dict(session.headers), timeout=30)

    async def converse(i: int) -> str:
        body = {"type": "threads.create", "params": {"input": user_input(f"Question {i}")}}
        response = await client.post("/chatkit", json=body)
        assert response.status_code == 200
        events = [json.loads(line[6:]) for line in response.text.split("\n") if line.startswith("data: ")]
        return streamed_text(events)

    async with client:
        # More streams than the pool holds connections: if a stream kept one for the
        # length of its reply, the others would wait longer than the pool's timeout.
        texts = await asyncio.gather(*(converse(i) for i in range(streams)))
    assert texts == ["".join(words)] * streams
    session.close()


async def _settled_reply() -> Message:
    for _ in range(100):
        reply = await Message.objects.aget(role="assistant")
        if reply.status != "streaming":
            return reply
        await asyncio.sleep(0.1)
    raise AssertionError("the reply was left streaming")


# The /chatkit/ page.


def test_the_page_embeds_chatkit_on_this_server_by_default(client, settings) -> None:
    settings.CHATKIT_WORKFLOW_ID = ""
    response = client.get("/chatkit/")
    assert response.status_code == 200
    html = response.content.decode()
    config = json.loads(html.split('id="chatkit-config" type="application/json">')[1].split("</script>")[0])
    assert config["mode"] == "self" and config["apiUrl"] == "/chatkit"
    assert config["domainKey"] == settings.CHATKIT_DOMAIN_KEY
    assert "<openai-chatkit" in html and "chatkit/page.js" in html
    csp = response["Content-Security-Policy"]
    assert "script-src 'self' https://cdn.platform.openai.com" in csp
    assert "frame-src https://cdn.platform.openai.com" in csp or "frame-src 'self' https://cdn.platform.openai.com" in csp
    # The rest of the site does not allow OpenAI's script.
    assert "cdn.platform.openai.com" not in client.get("/")["Content-Security-Policy"]


def test_the_page_uses_a_hosted_workflow_when_configured(client, standin, settings) -> None:
    settings.CHATKIT_WORKFLOW_ID = "wf_test"
    html = client.get("/chatkit/").content.decode()
    assert '"mode": "hosted"' in html and '"sessionUrl": "/api/chatkit/session"' in html


@pytest.mark.parametrize(("backend", "key", "notice"), [
    ("off", "sk-test", "CHATKIT_BACKEND=off"),
    ("hosted", "", "ChatKit sessions are not configured: set CHATKIT_WORKFLOW_ID and OPENAI_API_KEY."),
])
def test_the_page_says_clearly_when_chatkit_is_not_configured(client, settings, backend, key, notice) -> None:
    settings.CHATKIT_BACKEND, settings.OPENAI_API_KEY, settings.CHATKIT_WORKFLOW_ID = backend, key, ""
    response = client.get("/chatkit/")
    html = response.content.decode()
    assert response.status_code == 200 and "ChatKit is not configured" in html and notice in html
    assert "<openai-chatkit" not in html and "chatkit/page.js" not in html
    assert "cdn.platform.openai.com" not in html.split('id="chatkit-config"')[0]


async def test_deleting_a_thread_stops_its_reply_at_the_model(standin) -> None:
    standin.script(Reply(tokens=[f"w{i} " for i in range(400)], tps=40))
    client, _ = await member("ann")
    body = {"type": "threads.create", "params": {"input": user_input("Count slowly")}}
    response = await client.post("/chatkit", data=json.dumps(body), content_type="application/json")
    events = []
    chunks = aiter(response.streaming_content)
    while streamed_text(events).count(" ") < 3:
        events.append(json.loads((await anext(chunks)).decode()[6:]))
    [created] = [e for e in events if e["type"] == "thread.created"]
    status, _ = await chatkit(client, "threads.delete", thread_id=created["thread"]["id"])
    assert status == 200
    record = await asyncio.to_thread(standin.wait_closed_early, 0, 5)
    assert record.stream_closed_early and record.tokens_sent < 400
    assert await Message.objects.acount() == 0


async def test_the_agents_reasoning_and_tool_calls_show_as_a_chatkit_workflow(standin, settings) -> None:
    from tests.standin import ToolCall

    settings.AGENT_TOOLS = ["streaming.tools.calculate"]
    call = ToolCall("calculate", '{"expression": "6 * 7"}')
    standin.script(
        Reply(text="", reasoning="Some arithmetic.", tool_calls=[call]), Reply(text="It is 42.", tps=200)
    )
    client, _ = await member("ann")
    status, events = await chatkit(client, "threads.create", input=user_input("What is 6 * 7?"))
    assert status == 200
    added = [e["item"] for e in events if e["type"] == "thread.item.added"]
    workflow, message = [a for a in added if a["type"] == "workflow"], [a for a in added if a["type"] == "assistant_message"]
    assert len(workflow) == 1 and len(message) == 1
    assert workflow[0]["id"] == f"{message[0]['id']}-steps-1"
    assert workflow[0]["created_at"] < message[0]["created_at"]  # shown above the reply
    tasks = [
        e["update"]["task"] for e in events
        if e["type"] == "thread.item.updated" and e["update"]["type"].startswith("workflow.task")
    ]
    assert tasks[0] == {"type": "thought", "content": "Some", "status_indicator": "none"}
    assert tasks[-1] == {
        "type": "custom", "title": "Tool: calculate", "icon": "bolt", "status_indicator": "complete",
        "content": 'calculate({"expression": "6 * 7"})\n→ 6 * 7 = 42',
    }
    [done] = [e["item"] for e in events if e["type"] == "thread.item.done" and e["item"]["type"] == "workflow"]
    assert [t["type"] for t in done["workflow"]["tasks"]] == ["thought", "custom"]
    assert done["workflow"]["tasks"][0]["content"] == "Some arithmetic." and not done["workflow"]["expanded"]
    workflow_done = next(
        i for i, e in enumerate(events) if e["type"] == "thread.item.done" and e["item"]["type"] == "workflow"
    )
    assert workflow_done < next(
        i for i, e in enumerate(events) if e["type"] == "thread.item.updated"
        and e["update"]["type"] == "assistant_message.content_part.text_delta"
    )  # the workflow is done before the text streams
    assert streamed_text(events) == "It is 42."
    reply = await Message.objects.aget(pk=message[0]["id"])
    assert reply.content == "It is 42." and [s["type"] for s in reply.steps] == ["reasoning", "tool"]
