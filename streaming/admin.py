"""Admin for the chat history: staff browse every user's threads and replies."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from .models import Message, Thread, User

METRIC_FIELDS = ("ttft_seconds", "token_count", "duration_seconds", "tokens_per_second")


@admin.register(User)
class ChatUserAdmin(UserAdmin):
    list_display = (*UserAdmin.list_display, "is_guest")
    list_filter = (*UserAdmin.list_filter, "is_guest")
    fieldsets = (*UserAdmin.fieldsets, ("Chat", {"fields": ("is_guest",)}))


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("created_at", "role", "status", "content", "model_name", *METRIC_FIELDS, "error")
    readonly_fields = fields
    ordering = ("created_at",)

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
    readonly_fields = ("id", "created_at", "updated_at")
    fields = ("id", "owner", "title", "external_id", "created_at", "updated_at")
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
    list_display = ("__str__", "thread", "role", "status", "model_name", *METRIC_FIELDS, "created_at")
    list_filter = ("status", "role", "model_name", "created_at")
    search_fields = ("content", "thread__title", "error")
    readonly_fields = tuple(f.name for f in Message._meta.fields)
    list_select_related = ("thread",)
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
