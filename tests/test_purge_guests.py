"""`manage.py purge_guests`: idle guests go, with their conversations; nobody else does."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from streaming.models import Message, Thread, User

pytestmark = pytest.mark.django_db


def guest(name: str, *, joined_days_ago: float, active_days_ago: float | None = None) -> User:
    user = User.objects.create(username=name, is_guest=True)
    User.objects.filter(pk=user.pk).update(date_joined=timezone.now() - timedelta(days=joined_days_ago))
    if active_days_ago is not None:
        thread = Thread.objects.create(owner=user, title=name)
        Message.objects.create(thread=thread, role="user", content="hi")
        Thread.objects.filter(pk=thread.pk).update(updated_at=timezone.now() - timedelta(days=active_days_ago))
    return user


def purge(*args: str) -> str:
    out = StringIO()
    call_command("purge_guests", *args, stdout=out)
    return out.getvalue().strip()


def test_idle_guests_are_deleted_with_their_conversations_and_no_one_else() -> None:
    guest("old-silent", joined_days_ago=30)
    guest("old-idle", joined_days_ago=30, active_days_ago=20)
    guest("old-active", joined_days_ago=30, active_days_ago=1)
    guest("new", joined_days_ago=1)
    member = User.objects.create_user(username="member", password="pw-12345678")
    User.objects.filter(pk=member.pk).update(date_joined=timezone.now() - timedelta(days=400))

    assert purge("--dry-run") == "would delete 2 idle guest users (idle > 14 days)"
    assert User.objects.count() == 5
    assert purge() == "deleted 2 idle guest users (idle > 14 days)"
    assert sorted(User.objects.values_list("username", flat=True)) == ["member", "new", "old-active"]
    assert list(Thread.objects.values_list("title", flat=True)) == ["old-active"]
    assert Message.objects.count() == 1


def test_the_idle_period_can_be_chosen() -> None:
    guest("a", joined_days_ago=3, active_days_ago=3)
    guest("b", joined_days_ago=3, active_days_ago=0.5)
    assert purge("--days", "2") == "deleted 1 idle guest user (idle > 2 days)"
    assert list(User.objects.values_list("username", flat=True)) == ["b"]
