from django.apps import AppConfig


class NewsletterConfig(AppConfig):
    name = "newsletter"
    verbose_name = "Newsletter"

    def ready(self) -> None:
        # The anymail signal's receiver (in tasks) and the webhook credentials check (tracking).
        from newsletter import tasks, tracking  # noqa: F401
