"""Searching conversations (GET /api/threads?q=&page=) and exporting one
(GET /api/threads/<id>/export): matching, ranking, paging, owner scoping, bad input, the
SQLite fallback, and the exported files' contents and headers."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import AsyncClient
from django.utils import timezone

from streaming import selectors
from streaming.models import Message, Thread, User
from tests.conftest import guest_client
from tests.test_native_api import call

pytestmark = pytest.mark.django_db(transaction=True)


async def owner_of(client: AsyncClient) -> User:
    return await User.objects.aget(username=(await call(client, "post", "/api/session", {}))[1]["user"]["username"])


async def add(thread: Thread, role: str, content: str, **fields: Any) -> Message:
    """A message continuing the thread's shown branch (as a run or a client's store adds one)."""
    current = await Thread.objects.filter(pk=thread.pk).values_list("current_id", flat=True).aget()
    message = await Message.objects.acreate(thread=thread, parent_id=current, role=role, content=content, **fields)
    await Thread.objects.filter(pk=thread.pk).aupdate(current=message)
    return message


async def conversation(owner: User, title: str, *texts: str, active: int = 0) -> Thread:
    """A thread of `owner`'s with `texts` as alternate user and assistant messages, last
    active `active` minutes after a fixed moment (later is more recent)."""
    thread = await Thread.objects.acreate(owner=owner, title=title)
    for i, text in enumerate(texts):
        role = Message.Role.USER if i % 2 == 0 else Message.Role.ASSISTANT
        await add(thread, role, text)
    moment = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=active)
    await Thread.objects.filter(pk=thread.pk).aupdate(updated_at=moment)
    return thread


async def search(client: AsyncClient, query: str = "", **params: Any) -> list[str]:
    """The titles `GET /api/threads` answers for `q=query` (a single page)."""
    response = await client.get("/api/threads", {"q": query, **params} if query else params)
    body = json.loads(response.content)
    assert response.status_code == 200, body
    assert set(body) == {"threads", "next_page"}
    ids = [t["id"] for t in body["threads"]]
    assert len(ids) == len(set(ids))  # never the same conversation twice
    return [t["title"] for t in body["threads"]]


@pytest.fixture
async def ann() -> AsyncClient:
    return await guest_client()


# Search.


async def test_search_finds_titles_and_message_text_by_the_beginnings_of_words(ann) -> None:
    owner = await owner_of(ann)
    await conversation(owner, "Python packaging", "How do I publish a wheel?", "Use build and twine.", active=1)
    await conversation(owner, "Holiday plans", "Somewhere warm in March", "Try the Canary Islands.", active=2)
    await conversation(owner, "Dinner", "A recipe with lentils", "Dal: lentils, onions, cumin.", active=3)

    assert await search(ann, "pyth") == ["Python packaging"]  # a word's beginning, in a title
    assert await search(ann, "PYTHON") == ["Python packaging"]  # in any case
    assert await search(ann, "canar") == ["Holiday plans"]  # in a reply's text only
    assert await search(ann, "twine") == ["Python packaging"]
    assert await search(ann, "  publish   wheel ") == ["Python packaging"]  # every word, in one message
    assert await search(ann, "publish lentils") == []  # not when the words are in different conversations
    # PostgreSQL matches words from their beginning (SQLite, substrings: the last test).
    assert await search(ann, "thon") == ([] if selectors.full_text_search() else ["Python packaging"])
    assert await search(ann, "zebra") == []
    assert await search(ann) == ["Dinner", "Holiday plans", "Python packaging"]  # no words: all, most recent first


async def test_search_ranks_title_matches_first_then_recent_and_lists_each_once(ann) -> None:
    owner = await owner_of(ann)
    await conversation(owner, "Old notes", "tea", "tea tea", "more about tea", active=1)
    await conversation(owner, "Tea ceremony", "How is it done?", "Slowly.", active=2)
    await conversation(owner, "Breakfast", "coffee or tea?", "Tea.", active=5)
    await conversation(owner, "Lunch", "tea again", "Sure.", active=4)

    # The title's match ranks above messages'; the rest by relevance, then the most recent.
    found = await search(ann, "tea")
    assert found[0] == "Tea ceremony"
    assert sorted(found) == ["Breakfast", "Lunch", "Old notes", "Tea ceremony"]


async def test_search_ties_are_ordered_most_recent_first(ann) -> None:
    owner = await owner_of(ann)
    for minute, title in [(3, "Jazz A"), (9, "Jazz B"), (1, "Jazz C")]:
        await conversation(owner, title, "x", active=minute)
    assert await search(ann, "jazz") == ["Jazz B", "Jazz A", "Jazz C"]


async def test_search_never_finds_another_users_conversations() -> None:
    ann, bob = await guest_client(), await guest_client()
    await conversation(await owner_of(ann), "Ann's garden", "roses and tulips")
    await conversation(await owner_of(bob), "Bob's tulips", "tulips everywhere")
    assert await search(ann, "tulip") == ["Ann's garden"]
    assert await search(bob, "tulip") == ["Bob's tulips"]
    assert await search(bob, "garden") == [] and await search(bob, "roses") == []
    assert await search(ann) == ["Ann's garden"]
    # A visitor who has no guest yet has no conversations.
    response = await AsyncClient().get("/api/threads", {"q": "tulip"})
    assert json.loads(response.content) == {"threads": [], "next_page": None}


async def test_what_is_typed_is_searched_for_never_read_as_query_syntax(ann) -> None:
    owner = await owner_of(ann)
    await conversation(owner, "Contractions", "It's fine, isn't it?")
    await conversation(owner, "Paths", r"C:\temp and node.js & friends")
    for query in ["it's", "isn't", "IT'S FINE"]:
        assert await search(ann, query) == ["Contractions"], query
    assert await search(ann, "node.js") == ["Paths"]
    for query in ["!", "&", "|", "(", "a:*", "'", "\\", "!fine", "fine | zebra", "<->", "':* | '"]:
        assert await search(ann, query) in ([], ["Contractions"], ["Paths"]), query
    assert await search(ann, "fine | zebra") == []  # `|` is a word to find, not "or"


async def test_pages_of_fifty_with_the_next_pages_number() -> None:
    ann = await guest_client()
    owner = await owner_of(ann)
    base = datetime(2025, 1, 1, tzinfo=UTC)
    await Thread.objects.abulk_create(
        [Thread(owner=owner, title=f"Note {i:03}", updated_at=base) for i in range(120)]
    )
    for i in range(120):  # auto_now set them all to now: spread them out, Note 119 the newest
        await Thread.objects.filter(title=f"Note {i:03}").aupdate(updated_at=base + timedelta(minutes=i))

    pages = []
    for page in (1, 2, 3):
        _, body = await call(ann, "get", f"/api/threads?page={page}")
        pages.append(body)
    assert [len(p["threads"]) for p in pages] == [50, 50, 20]
    assert [p["next_page"] for p in pages] == [2, 3, None]
    titles = [t["title"] for p in pages for t in p["threads"]]
    assert titles == [f"Note {i:03}" for i in reversed(range(120))]  # all, once each, in order
    assert await call(ann, "get", "/api/threads?page=4") == (200, {"threads": [], "next_page": None})

    # Search results are paged the same way.
    _, first = await call(ann, "get", "/api/threads?q=note")
    _, last = await call(ann, "get", "/api/threads?q=note&page=3")
    assert first["next_page"] == 2 and len(first["threads"]) == 50
    assert last["next_page"] is None and [t["title"] for t in last["threads"]][-1] == "Note 000"


async def test_exactly_one_page_has_no_next_page(ann) -> None:
    owner = await owner_of(ann)
    await Thread.objects.abulk_create([Thread(owner=owner, title=f"T{i}") for i in range(50)])
    _, body = await call(ann, "get", "/api/threads")
    assert len(body["threads"]) == 50 and body["next_page"] is None


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("page=0", "'page' must be a whole number from 1 to 100000."),
        ("page=-1", "'page' must be a whole number from 1 to 100000."),
        ("page=1.5", "'page' must be a whole number from 1 to 100000."),
        ("page=two", "'page' must be a whole number from 1 to 100000."),
        ("page=", "'page' must be a whole number from 1 to 100000."),
        ("page=100001", "'page' must be a whole number from 1 to 100000."),
        ("page=%EF%BC%91", "'page' must be a whole number from 1 to 100000."),  # a full-width 1
        ("q=" + "a" * 201, "'q' must be text of at most 200 characters."),
        ("q=a%00b", "'q' must be text of at most 200 characters."),
    ],
)
async def test_bad_search_parameters_get_400_saying_why(ann, query, error) -> None:
    assert await call(ann, "get", f"/api/threads?{query}") == (400, {"error": error})
    assert await call(AsyncClient(), "get", f"/api/threads?{query}") == (400, {"error": error})


async def test_the_longest_query_and_last_page_are_accepted(ann) -> None:
    assert await call(ann, "get", "/api/threads?q=" + "a" * 200) == (200, {"threads": [], "next_page": None})
    assert await call(ann, "get", "/api/threads?page=100000") == (200, {"threads": [], "next_page": None})


async def test_without_postgresql_search_matches_substrings_in_any_case(ann, monkeypatch) -> None:
    monkeypatch.setattr(selectors, "full_text_search", lambda: False)
    bob = await guest_client()
    owner = await owner_of(ann)
    await conversation(owner, "Python packaging", "How do I publish a wheel?", active=1)
    await conversation(owner, "Holiday plans", "Somewhere warm, maybe with PYTHONS", active=2)
    await conversation(owner, "Dinner", "lentils", active=3)
    await conversation(await owner_of(bob), "Bob's python", "python")

    assert await search(ann, "pyth") == ["Python packaging", "Holiday plans"]  # the title's match first
    assert await search(ann, "thon") == ["Python packaging", "Holiday plans"]  # anywhere in a word
    assert await search(ann, "publish wheel") == ["Python packaging"]
    assert await search(ann, "publish lentils") == []
    assert await search(ann, "it's") == []
    assert await search(ann, "%") == [] and await search(ann, "_") == []  # no LIKE wildcards
    assert await search(ann) == ["Dinner", "Holiday plans", "Python packaging"]
    assert await search(bob, "plans") == [] and await search(bob, "pyth") == ["Bob's python"]


async def test_the_selector_pages_any_size(ann) -> None:
    owner = await owner_of(ann)
    for minute in range(5):
        await conversation(owner, f"Walk {minute}", active=minute)
    first = await selectors.thread_search(user=owner, text="walk", per_page=2)
    third = await selectors.thread_search(user=owner, text="walk", page=3, per_page=2)
    assert [t.title for t in first.threads] == ["Walk 4", "Walk 3"] and first.next_page == 2
    assert [t.title for t in third.threads] == ["Walk 0"] and third.next_page is None


# Export.


async def exported(client: AsyncClient, thread: Thread, query: str = "") -> Any:
    return await client.get(f"/api/threads/{thread.pk}/export{query}")


async def test_markdown_export_has_the_title_and_each_message_with_who_and_when(ann) -> None:
    owner = await owner_of(ann)
    thread = await conversation(owner, "Holiday plans: 2025!", "Where should we go?\n\nSomewhere *warm*.")
    await add(thread, Message.Role.ASSISTANT, "Try **Lisbon**.\n\n```\ncode\n```\n")
    await add(thread, Message.Role.ASSISTANT, "Part", status=Message.Status.FAILED, error="The model failed.")
    messages = [m async for m in thread.messages.order_by("created_at")]
    when = [m.created_at.strftime("%Y-%m-%d %H:%M UTC") for m in messages]

    for query in ("", "?format=markdown"):
        response = await exported(ann, thread, query)
        assert response.status_code == 200
        assert response["Content-Type"] == "text/markdown; charset=utf-8"
        assert response["Content-Disposition"] == 'attachment; filename="holiday-plans-2025.md"'
        assert response.content.decode() == (
            "# Holiday plans: 2025!\n\n"
            f"## You — {when[0]}\n\n"
            "Where should we go?\n\nSomewhere *warm*.\n\n"
            f"## Assistant — {when[1]}\n\n"
            "Try **Lisbon**.\n\n```\ncode\n```\n\n"
            f"## Assistant — {when[2]} (failed)\n\n"
            "Part\n\n"
            "> The model failed.\n"
        )


async def test_json_export_is_the_thread_and_its_messages_as_the_api_gives_them(ann) -> None:
    owner = await owner_of(ann)
    thread = await conversation(owner, "Café 世界", "Bonjour ☕", "Salut !")
    await Message.objects.filter(thread=thread, role="assistant").aupdate(
        token_count=3, ttft_seconds=0.25, duration_seconds=1.5, tokens_per_second=2.0, model_name="gpt-test"
    )
    before = timezone.now()
    response = await exported(ann, thread, "?format=json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == "attachment; filename*=utf-8''caf%C3%A9-%E4%B8%96%E7%95%8C.json"
    body = json.loads(response.content)
    assert "Bonjour ☕" in response.content.decode()  # readable, not \\u-escaped
    assert set(body) == {"thread", "messages", "exported_at"}
    assert body["thread"] == (await call(ann, "get", f"/api/threads/{thread.pk}"))[1]
    assert body["messages"] == (await call(ann, "get", f"/api/threads/{thread.pk}/messages"))[1]["messages"]
    assert [m["content"] for m in body["messages"]] == ["Bonjour ☕", "Salut !"]
    assert body["messages"][1]["metrics"] == {
        "ttft_seconds": 0.25, "token_count": 3, "duration_seconds": 1.5, "tokens_per_second": 2.0,
    }
    assert before <= datetime.fromisoformat(body["exported_at"]) <= timezone.now()


async def test_an_untitled_or_unsluggable_conversation_exports_under_a_plain_name(ann) -> None:
    owner = await owner_of(ann)
    untitled = await conversation(owner, "")
    symbols = await conversation(owner, "?!* ###")
    response = await exported(ann, untitled)
    assert response["Content-Disposition"] == f'attachment; filename="thread-{str(untitled.pk)[:8]}.md"'
    assert response.content.decode() == f"# Thread {str(untitled.pk)[:8]}\n"
    response = await exported(ann, symbols, "?format=json")
    assert response["Content-Disposition"] == 'attachment; filename="conversation.json"'


async def test_export_is_for_the_owner_only_and_checks_its_format(ann) -> None:
    thread = await conversation(await owner_of(ann), "Secret", "the password is swordfish")
    bob = await guest_client()
    for client in (bob, AsyncClient()):
        for query in ("", "?format=json", "?format=pdf"):
            response = await exported(client, thread, query)
            assert response.status_code == 404
            assert json.loads(response.content) == {"error": "No such conversation."}
            assert b"swordfish" not in response.content
    response = await ann.get("/api/threads/00000000-0000-0000-0000-000000000000/export")
    assert response.status_code == 404
    for bad in ("pdf", "MARKDOWN", "md", ""):
        assert await call(ann, "get", f"/api/threads/{thread.pk}/export?format={bad}") == (
            400, {"error": "'format' must be 'markdown' or 'json'."}
        )
    response = await ann.post(f"/api/threads/{thread.pk}/export", data="{}", content_type="application/json")
    assert response.status_code == 405
