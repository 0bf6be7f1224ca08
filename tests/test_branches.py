"""Regenerated replies and edited messages: versions of a turn, the branch shown, and the
history the model is given (docs/api.md, "Versions and branches")."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.test import AsyncClient

from streaming import services
from streaming.admin import Branches
from streaming.models import Message, Thread, User
from streaming.selectors import history_to, shown_ids
from tests.standin import Reply
from tests.test_native_api import call, guest, sse, start, text_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("run_cleanup")]


def turns(*pairs: tuple[str, str]) -> list[dict]:
    return [{"role": role, "content": content} for role, content in pairs]


async def shown(client: AsyncClient, thread_id: str) -> list[dict]:
    status, listed = await call(client, "get", f"/api/threads/{thread_id}/messages")
    assert status == 200
    return listed["messages"]


async def said(client: AsyncClient, thread_id: str, message: str, **body: object) -> dict:
    status, started = await call(client, "post", f"/api/threads/{thread_id}/messages", {"message": message, **body})
    assert status == 201, started
    await sse(client, started["run_id"])
    return started


async def regenerate(client: AsyncClient, run_id: str) -> dict:
    status, started = await call(client, "post", f"/api/runs/{run_id}/regenerate", {})
    assert status == 201, started
    await sse(client, started["run_id"])
    return started


def summary(messages: list[dict]) -> list[tuple[str, str, int, int]]:
    return [(m["role"], m["content"], m["version"], m["versions"]) for m in messages]


async def test_regenerate_makes_one_model_call_with_the_same_history_and_keeps_both_versions(standin) -> None:
    standin.script(Reply(text="First answer."), Reply(text="Second answer."), Reply(text="Third answer."))
    client = await guest()
    first = await start(client, "Question")
    thread_id = first["thread_id"]
    await sse(client, first["run_id"])
    calls = len(standin.requests)

    again = await regenerate(client, first["run_id"])
    assert len(standin.requests) == calls + 1  # exactly one model call
    assert standin.requests[-1].json["input"] == turns(("user", "Question"))
    assert again["user_message_id"] == first["user_message_id"] and again["thread_id"] == thread_id
    messages = await shown(client, thread_id)
    assert summary(messages) == [("user", "Question", 1, 1), ("assistant", "Second answer.", 2, 2)]
    assert messages[1]["version_ids"] == [first["run_id"], again["run_id"]]
    assert messages[1]["parent_id"] == first["user_message_id"]

    # Version 1 shown again: the conversation, and the next turn's history, use it.
    status, answer = await call(client, "post", f"/api/threads/{thread_id}/branch", {"message_id": first["run_id"]})
    assert status == 200
    assert summary(answer["messages"]) == [("user", "Question", 1, 1), ("assistant", "First answer.", 1, 2)]
    assert answer["messages"] == await shown(client, thread_id)
    await said(client, thread_id, "Follow-up")
    assert standin.requests[-1].json["input"] == turns(
        ("user", "Question"), ("assistant", "First answer."), ("user", "Follow-up")
    )
    assert [m["content"] for m in await shown(client, thread_id)] == [
        "Question", "First answer.", "Follow-up", "Third answer.",
    ]

    # Every message of every branch, with its parent, for clients that draw the tree.
    status, every = await call(client, "get", f"/api/threads/{thread_id}/messages?branches=all")
    assert status == 200
    assert [(m["content"], m["version"], m["versions"]) for m in every["messages"]] == [
        ("Question", 1, 1), ("First answer.", 1, 2), ("Second answer.", 2, 2),
        ("Follow-up", 1, 1), ("Third answer.", 1, 1),
    ]
    assert every["messages"][3]["parent_id"] == first["run_id"]


async def test_an_edited_message_continues_from_the_edit_and_the_earlier_branch_stays_reachable(standin) -> None:
    standin.script(Reply(text="A1"), Reply(text="A2"), Reply(text="A2 edited"), Reply(text="A3"))
    client = await guest()
    first = await start(client, "Q1")
    thread_id = first["thread_id"]
    await sse(client, first["run_id"])
    second = await said(client, thread_id, "Q2")

    edited = await said(client, thread_id, "Q2, rephrased", edit_of=second["user_message_id"])
    assert standin.requests[-1].json["input"] == turns(("user", "Q1"), ("assistant", "A1"), ("user", "Q2, rephrased"))
    messages = await shown(client, thread_id)
    assert summary(messages) == [
        ("user", "Q1", 1, 1), ("assistant", "A1", 1, 1),
        ("user", "Q2, rephrased", 2, 2), ("assistant", "A2 edited", 1, 1),
    ]
    assert messages[2]["version_ids"] == [second["user_message_id"], edited["user_message_id"]]

    # The earlier branch, with its own reply, is one request away, and continues from there.
    status, answer = await call(
        client, "post", f"/api/threads/{thread_id}/branch", {"message_id": second["user_message_id"]}
    )
    assert status == 200
    assert summary(answer["messages"]) == [
        ("user", "Q1", 1, 1), ("assistant", "A1", 1, 1), ("user", "Q2", 1, 2), ("assistant", "A2", 1, 1),
    ]
    await said(client, thread_id, "Q3")
    assert standin.requests[-1].json["input"] == turns(
        ("user", "Q1"), ("assistant", "A1"), ("user", "Q2"), ("assistant", "A2"), ("user", "Q3")
    )
    # Back to the edited version: its branch ends where it ended.
    _, answer = await call(client, "post", f"/api/threads/{thread_id}/branch", {"message_id": edited["user_message_id"]})
    assert [m["content"] for m in answer["messages"]] == ["Q1", "A1", "Q2, rephrased", "A2 edited"]


async def test_editing_the_first_message_starts_a_new_root(standin) -> None:
    standin.script(Reply(text="A"), Reply(text="B"))
    client = await guest()
    first = await start(client, "Hello")
    await sse(client, first["run_id"])
    edited = await said(client, first["thread_id"], "Hi there", edit_of=first["user_message_id"])
    assert standin.requests[-1].json["input"] == turns(("user", "Hi there"))
    messages = await shown(client, first["thread_id"])
    assert summary(messages) == [("user", "Hi there", 2, 2), ("assistant", "B", 1, 1)]
    assert messages[0]["parent_id"] is None and messages[0]["version_ids"][1] == edited["user_message_id"]


async def test_what_cannot_be_branched_from_gets_a_clear_error_and_saves_nothing(standin) -> None:
    standin.script(Reply(text="Slow " * 200, tps=50), Reply(text="Other"))
    client, stranger = await guest(), await guest()
    live = await start(client, "Question")
    thread_id = live["thread_id"]
    other = await start(stranger, "Not yours")
    before = await Message.objects.acount()

    # Still being written: 409; someone else's reply or an unknown one: 404.
    assert await call(client, "post", f"/api/runs/{live['run_id']}/regenerate", {}) == (
        409, {"error": "This reply is still being written; stop it or wait for it to finish first."}
    )
    for run_id in (other["run_id"], "6b3e0bd2-2b47-4e1e-9a3e-6f7c8d9e0a1b"):
        assert (await call(client, "post", f"/api/runs/{run_id}/regenerate", {}))[0] == 404
    bad = await call(client, "post", f"/api/runs/{live['run_id']}/regenerate", {"buffer_size": 0})
    assert bad[0] == 400

    url = f"/api/threads/{thread_id}/messages"
    not_here = (400, {"error": "'edit_of' must be a message of this conversation."})
    assert await call(client, "post", url, {"message": "x", "edit_of": other["user_message_id"]}) == not_here
    assert await call(client, "post", url, {"message": "x", "edit_of": "nope"}) == (
        400, {"error": "'edit_of' must be a message id."}
    )
    assert await call(client, "post", url, {"message": "x", "edit_of": 7}) == (
        400, {"error": "'edit_of' must be a message id."}
    )
    assert await call(client, "post", url, {"message": "x", "edit_of": live["run_id"]}) == (
        400, {"error": "Only a message you sent in this conversation can be edited."}
    )

    branch = f"/api/threads/{thread_id}/branch"
    assert await call(client, "post", branch, {"message_id": other["run_id"]}) == (
        400, {"error": "'message_id' must be a message of this conversation."}
    )
    assert await call(client, "post", branch, {}) == (400, {"error": "'message_id' must be a message id."})
    assert (await call(stranger, "post", branch, {"message_id": live["run_id"]}))[0] == 404
    assert await Message.objects.acount() == before
    assert str((await Thread.objects.aget(pk=thread_id)).current_id) == live["run_id"]
    await call(client, "post", f"/api/runs/{live['run_id']}/stop", {})
    await sse(client, live["run_id"])


async def test_a_run_that_could_not_start_leaves_the_branch_shown_as_it_was(standin) -> None:
    standin.script(Reply(text="A"), Reply(text="B"))
    client = await guest()
    first = await start(client, "Q")
    await sse(client, first["run_id"])
    again = await regenerate(client, first["run_id"])
    thread = await Thread.objects.aget(pk=first["thread_id"])
    user = await sync_to_async(lambda: thread.owner)()
    reply = await Message.objects.aget(pk=first["run_id"])

    admitted = await sync_to_async(services.run_admit)(
        thread=thread, owner=user, text="", model_name="m", regenerate=reply
    )
    assert (await Thread.objects.aget(pk=thread.pk)).current_id == admitted.reply.pk
    await sync_to_async(services.run_discard)(admitted=admitted, keep_message=True, keep_thread=True)
    assert str((await Thread.objects.aget(pk=thread.pk)).current_id) == again["run_id"]
    assert [m["content"] for m in await shown(client, first["thread_id"])] == ["Q", "B"]
    assert text_of(await sse(client, again["run_id"])) == "B"



@pytest.mark.parametrize("turns", [1, 6])
def test_reading_a_conversations_branches_takes_the_same_queries_whatever_its_length(
    turns, django_assert_num_queries
) -> None:
    """The history given to the model, the branch shown, a branch switch and the admin's
    versions each read the conversation's messages in one query, however many it has."""
    owner = User.objects.create(username=f"long-{turns}")
    thread = Thread.objects.create(owner=owner, title="long")
    parent = None
    for i in range(turns):
        asked = Message.objects.create(thread=thread, parent=parent, role="user", content=f"q{i}", status="completed")
        parent = Message.objects.create(thread=thread, parent=asked, role="assistant", content=f"a{i}", status="completed")
    assert parent is not None
    Thread.objects.filter(pk=thread.pk).update(current=parent)
    thread = Thread.objects.get(pk=thread.pk)
    with django_assert_num_queries(1):
        history = history_to(thread=thread, message_id=parent.pk)
    assert [t.content for t in history] == [f"{k}{i}" for i in range(turns) for k in "qa"]
    with django_assert_num_queries(1):
        assert len(async_to_sync(shown_ids)(thread=thread)) == 2 * turns
    with django_assert_num_queries(5):  # BEGIN, the thread locked, its messages, the branch shown, COMMIT
        assert services.branch_show(thread=thread, message_id=parent.pk) == parent
    with django_assert_num_queries(2):  # the thread's shown message, then its messages
        Branches()._of(parent)
