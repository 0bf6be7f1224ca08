"""Threads and messages: ids, ordering, status and per-owner external ids."""

import uuid

import pytest
from django.db import IntegrityError

from streaming.models import Message, Thread, User

pytestmark = pytest.mark.django_db


def test_ids_are_uuids_and_messages_keep_order() -> None:
    owner = User.objects.create_user("ann")
    thread = Thread.objects.create(owner=owner)
    first = Message.objects.create(thread=thread, role="user", content="one")
    second = Message.objects.create(thread=thread, role="assistant", content="two")
    assert isinstance(thread.pk, uuid.UUID) and isinstance(first.pk, uuid.UUID)
    assert list(thread.messages.values_list("content", flat=True)) == ["one", "two"]
    assert second.status == Message.Status.COMPLETED
    assert str(thread) == f"Thread {str(thread.pk)[:8]}"


def test_statuses_are_the_run_lifecycle() -> None:
    assert set(Message.Status.values) == {"streaming", "completed", "stopped", "failed", "interrupted"}


def test_external_id_is_unique_per_owner_only() -> None:
    ann, ben = User.objects.create_user("ann"), User.objects.create_user("ben")
    Thread.objects.create(owner=ann, external_id="thr_1")
    Thread.objects.create(owner=ben, external_id="thr_1")
    Thread.objects.create(owner=ann)  # many threads without an external id
    Thread.objects.create(owner=ann)
    with pytest.raises(IntegrityError):
        Thread.objects.create(owner=ann, external_id="thr_1")


def test_deleting_a_thread_deletes_its_messages() -> None:
    thread = Thread.objects.create(owner=User.objects.create_user("ann"))
    Message.objects.create(thread=thread, role="user", content="hi")
    thread.delete()
    assert Message.objects.count() == 0
