"""The admin shows every user's thread history to staff, with reply metrics."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from streaming.models import Message, Thread, User

pytestmark = pytest.mark.django_db


@pytest.fixture
def history() -> dict[str, Thread]:
    alice = User.objects.create_user("alice", password="pw-alice-123")
    bob = User.objects.create_user("bob", password="pw-bob-123")
    a = Thread.objects.create(owner=alice, title="Paris trip")
    b = Thread.objects.create(owner=bob, title="Tax questions")
    Message.objects.create(thread=a, role="user", content="Where to eat near the Louvre?")
    Message.objects.create(
        thread=a, role="assistant", content="Try the bistro on Rue de Rivoli.", model_name="gpt-test",
        status=Message.Status.COMPLETED, ttft_seconds=0.25, token_count=42, duration_seconds=2.0,
        tokens_per_second=21.0,
    )
    Message.objects.create(thread=b, role="user", content="Is a home office deductible?")
    Message.objects.create(
        thread=b, role="assistant", content="It depends", status=Message.Status.STOPPED
    )
    return {"alice": a, "bob": b}


@pytest.fixture
def staff_client(client):
    User.objects.create_superuser("root", password="pw-root-123")
    client.login(username="root", password="pw-root-123")
    return client


def test_staff_see_every_users_threads_with_counts(staff_client, history) -> None:
    page = staff_client.get(reverse("admin:streaming_thread_changelist"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Paris trip" in html and "Tax questions" in html
    assert "alice" in html and "bob" in html
    rows = {t.title: t.message_count for t in page.context["cl"].result_list}
    assert rows == {"Paris trip": 2, "Tax questions": 2}


def test_search_covers_message_content(staff_client, history) -> None:
    page = staff_client.get(reverse("admin:streaming_thread_changelist"), {"q": "Louvre"})
    assert [t.title for t in page.context["cl"].result_list] == ["Paris trip"]


def test_filter_by_message_status_and_owner(staff_client, history) -> None:
    url = reverse("admin:streaming_thread_changelist")
    stopped = staff_client.get(url, {"messages__status__exact": "stopped"})
    assert [t.title for t in stopped.context["cl"].result_list] == ["Tax questions"]
    owner = history["alice"].owner
    mine = staff_client.get(url, {"owner__id__exact": owner.pk})
    assert [t.title for t in mine.context["cl"].result_list] == ["Paris trip"]


def test_thread_page_shows_messages_read_only_with_metrics(staff_client, history) -> None:
    thread = history["alice"]
    page = staff_client.get(reverse("admin:streaming_thread_change", args=[thread.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Try the bistro on Rue de Rivoli." in html
    assert "42" in html and "21.0" in html and "0.25" in html
    inline = page.context["inline_admin_formsets"][0]
    assert set(inline.formset.form.base_fields) == set()  # every field is read-only
    assert not inline.has_add_permission


def test_non_staff_cannot_open_the_admin(client, history) -> None:
    User.objects.create_user("eve", password="pw-eve-12345")
    client.login(username="eve", password="pw-eve-12345")
    page = client.get(reverse("admin:streaming_thread_changelist"))
    assert page.status_code == 302
    assert "/admin/login/" in page["Location"]


def test_thread_page_shows_each_messages_version_and_the_branch_shown(staff_client) -> None:
    owner = User.objects.create_user("carol", password="pw-carol-123")
    thread = Thread.objects.create(owner=owner, title="Versions")
    question = Message.objects.create(thread=thread, role="user", content="Name a colour")
    Message.objects.create(thread=thread, parent=question, role="assistant", content="Crimson, first try")
    second = Message.objects.create(thread=thread, parent=question, role="assistant", content="Teal, second try")
    Thread.objects.filter(pk=thread.pk).update(current=second)
    page = staff_client.get(reverse("admin:streaming_thread_change", args=[thread.pk]))
    html = page.content.decode()
    rows = re.findall(r'<tr class="form-row.*?</tr>', html, re.S)  # oldest first
    assert len(rows) == 3
    for row, (text, version, shown) in zip(rows, [
        ("Name a colour", "1 of 1", True), ("Crimson, first try", "1 of 2", False), ("Teal, second try", "2 of 2", True),
    ], strict=True):
        assert text in row and f"<p>{version}</p>" in row and f'alt="{shown}"' in row
    listing = staff_client.get(reverse("admin:streaming_message_changelist")).content.decode()
    assert "1 of 2" in listing and "2 of 2" in listing


def conversation(owner: User, turns: int) -> Thread:
    thread = Thread.objects.create(owner=owner, title=f"{turns} turns")
    parent = None
    for i in range(turns):
        asked = Message.objects.create(thread=thread, parent=parent, role="user", content=f"question {i}")
        parent = Message.objects.create(thread=thread, parent=asked, role="assistant", content=f"answer {i}")
    Thread.objects.filter(pk=thread.pk).update(current=parent)
    return thread



def test_a_long_conversations_pages_take_no_more_queries_than_a_short_ones(staff_client) -> None:
    """The thread page (its messages inline, each with its version and parent) and the
    message list read what they show in a fixed number of queries, not one per row."""
    dave = User.objects.create_user("dave", password="pw-dave-123")
    counts = []
    for turns in (1, 10):
        thread = conversation(dave, turns)
        with CaptureQueriesContext(connection) as page:
            response = staff_client.get(reverse("admin:streaming_thread_change", args=[thread.pk]))
        assert f"answer {turns - 1}" in response.content.decode()
        with CaptureQueriesContext(connection) as listing:
            response = staff_client.get(reverse("admin:streaming_message_changelist") + f"?q={turns}+turns")
        assert response.content.decode().count("1 of 1") == 2 * turns  # searched by thread title
        counts.append((len(page), len(listing)))
    assert counts[0] == counts[1], counts
