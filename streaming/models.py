"""Users, conversation threads and their messages, with per-reply run metrics."""

import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A site user; guests are real users bound to one browser session."""

    is_guest = models.BooleanField(default=False, db_index=True)


class Thread(models.Model):
    """One conversation, owned by one user."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="threads"
    )
    title = models.CharField(max_length=200, blank=True)
    # The last message of the branch shown (a conversation is a tree once a reply is
    # regenerated or a message edited: see `Message.parent`).
    current = models.ForeignKey(
        "Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The last message of the branch shown.",
    )
    # NULL, not "", for threads without one: the per-owner unique constraint ignores NULLs.
    external_id = models.CharField(  # noqa: DJ001
        max_length=200, blank=True, null=True, help_text="A client's id for it (ChatKit thread id)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "external_id"], name="thread_unique_external_id_per_owner"
            )
        ]

    def __str__(self) -> str:
        return self.title or f"Thread {str(self.id)[:8]}"


class Message(models.Model):
    """One turn of a thread; an assistant message is also the record of its run."""

    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        STREAMING = "streaming"
        COMPLETED = "completed"
        STOPPED = "stopped"
        FAILED = "failed"
        INTERRUPTED = "interrupted"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="messages")
    # The message this one follows: a reply's question, or the reply a message answers
    # (None for a conversation's first). Messages with the same parent are versions of one
    # turn: regenerated replies, edited messages.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.COMPLETED, db_index=True
    )
    error = models.TextField(blank=True)
    # A reply's steps on the way, in order: {"type": "reasoning", "text"} and {"type": "tool",
    # "call_id", "name", "arguments", "output", "error", "truncated"} (docs/api.md).
    steps = models.JSONField(default=list, blank=True)
    model_name = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    ttft_seconds = models.FloatField(null=True, blank=True, help_text="Time to first token.")
    token_count = models.PositiveIntegerField(default=0)
    duration_seconds = models.FloatField(null=True, blank=True)
    tokens_per_second = models.FloatField(null=True, blank=True)
    # A client's id for the reply, scoped to its user ("<user id>:<id>"): a retried request
    # with the same id attaches to this reply instead of starting another.
    client_id = models.CharField(
        max_length=300, null=True, blank=True, unique=True, editable=False
    )

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["thread", "created_at"])]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"
