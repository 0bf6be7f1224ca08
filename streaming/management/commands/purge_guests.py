"""`manage.py purge_guests`: delete guest users nobody can come back as.

A guest is bound to one browser session; once that session has expired (Django's
`SESSION_COOKIE_AGE`, two weeks by default) nobody can use the guest again. Guests that
joined and last chatted longer ago than that are deleted with their conversations. Run it
daily, with Django's `clearsessions`.
"""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db.models import Max, Q
from django.utils import timezone

from streaming.models import User


class Command(BaseCommand):
    help = "Delete guest users (and their conversations) idle longer than a session lives."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", type=float, default=settings.SESSION_COOKIE_AGE / 86400,
            help="idle for at least this many days (default: the session lifetime)",
        )
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")

    def handle(self, *args: Any, days: float, dry_run: bool, **options: Any) -> None:
        cutoff = timezone.now() - timedelta(days=days)
        idle = (
            User.objects.filter(is_guest=True, date_joined__lt=cutoff)
            .annotate(last_active=Max("threads__updated_at"))
            .filter(Q(last_active__isnull=True) | Q(last_active__lt=cutoff))
        )
        count = idle.count()
        if not dry_run:
            User.objects.filter(pk__in=list(idle.values_list("pk", flat=True))).delete()
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(f"{verb} {count} idle guest user{'s' if count != 1 else ''} (idle > {days:g} days)")
