"""Admin for the chat history: staff browse every user's threads and replies."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from .models import Message, Thread, User
from .selectors import Versions, number_versions, shown_branch, thread_rows

METRIC_FIELDS = ("ttft_seconds", "token_count", "duration_seconds", "tokens_per_second")


@admin.register(User)
class ChatUserAdmin(UserAdmin):
    list_display = (*UserAdmin.list_display, "is_guest")
    list_filter = (*UserAdmin.list_filter, "is_guest")
    fieldsets = (*UserAdmin.fieldsets, ("Chat", {"fields": ("is_guest",)}))


class Branches:
    """Where a thread's messages stand among its branches (regenerated replies and edited
    messages are versions of one turn; the thread shows one branch), read once per thread."""

    def __init__(self) -> None:
        self._threads: dict[object, tuple[set[object], dict[object, Versions]]] = {}

    def _of(self, message: Message) -> tuple[set[object], dict[object, Versions]]:
        if message.thread_id not in self._threads:
            thread = Thread.objects.only("current").get(pk=message.thread_id)
            rows = list(thread_rows(thread, "parent_id"))
            number_versions(rows, rows)
            shown = {m.pk for m in shown_branch(rows, thread.current_id)}
            self._threads[message.thread_id] = (shown, {m.pk: m.versions for m in rows})  # type: ignore[attr-defined]
        return self._threads[message.thread_id]

    def version(self, message: Message) -> str:
        versions = self._of(message)[1].get(message.pk)
        return version_label(versions)

    def shown(self, message: Message) -> bool:
        return message.pk in self._of(message)[0]


def version_label(versions: Versions | None) -> str:
    return f"{versions.number} of {len(versions.ids)}" if versions else "–"


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    can_delete = False
    show_change_link = True
    fields = (
        "created_at", "role", "status", "content", "version", "shown", "parent", "model_name",
        *METRIC_FIELDS, "error",
    )
    readonly_fields = fields
    ordering = ("created_at",)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.branches = Branches()  # an instance per request

    @admin.display(description="version")
    def version(self, obj: Message) -> str:
        return self.branches.version(obj)

    @admin.display(description="shown", boolean=True)
    def shown(self, obj: Message) -> bool:
        return self.branches.shown(obj)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        return super().get_queryset(request).select_related("parent")  # shown on every row

    def has_add_permission(self, request: HttpRequest, obj: Thread | None = None) -> bool:
        return False


@admin.register(Thread)
class ThreadAdmin(admin.ModelAdmin):
    list_display = ("__str__", "owner", "message_count", "last_activity", "created_at")
    list_filter = (
        "messages__status",
        "updated_at",
        "created_at",
        ("owner", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("title", "messages__content", "owner__username", "external_id")
    readonly_fields = ("id", "current", "created_at", "updated_at")
    fields = ("id", "owner", "title", "external_id", "current", "created_at", "updated_at")
    raw_id_fields = ("owner",)
    date_hierarchy = "updated_at"
    inlines = [MessageInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Thread]:
        return (
            super()
            .get_queryset(request)
            .select_related("owner")
            .annotate(message_count=Count("messages", distinct=True))
        )

    @admin.display(description="messages", ordering="message_count")
    def message_count(self, obj: Thread) -> int:
        return obj.message_count  # type: ignore[attr-defined]

    @admin.display(description="last activity", ordering="updated_at")
    def last_activity(self, obj: Thread) -> object:
        return obj.updated_at


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("__str__", "thread", "role", "status", "version", "model_name", *METRIC_FIELDS, "created_at")
    list_filter = ("status", "role", "model_name", "created_at")
    search_fields = ("content", "thread__title", "error")
    readonly_fields = tuple(f.name for f in Message._meta.fields)
    list_select_related = ("thread",)
    date_hierarchy = "created_at"

    def get_list_display(self, request: HttpRequest) -> tuple[object, ...]:
        """The list, with each message's version read once per conversation on the page
        (not a query per row)."""
        branches = Branches()

        @admin.display(description="version")
        def version(obj: Message) -> str:
            return branches.version(obj)

        return tuple(version if name == "version" else name for name in self.list_display)

    @admin.display(description="version")
    def version(self, obj: Message) -> str:  # what `list_display` names; the list uses the above
        return Branches().version(obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
