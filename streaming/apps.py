from django.apps import AppConfig


class StreamingConfig(AppConfig):
    name = "streaming"
    verbose_name = "Chat streaming"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the system checks
