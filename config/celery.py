"""The one Celery app. Its configuration lives in settings.py under the CELERY_ prefix."""

import gc
import os

from celery import Celery
from celery.signals import beat_init, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("paperboy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def load_embedding_model(**_: object) -> None:
    """The operator's embedding model (``PAPERS_EMBEDDING_MODEL``), loaded once as the worker
    process starts rather than by its first digest (and before its objects are frozen)."""
    from papers.ranking_data import embedding_model

    embedding_model()


@worker_process_init.connect
def freeze_startup_objects(**_: object) -> None:
    """Leave what a worker process starts with out of garbage collection: Django's, Celery's
    and our modules, classes and functions, some 230,000 objects that live as long as the
    process. Python's full collections walked them all, about 130 ms each and every second or
    two in a busy worker: 15 % of its CPU (BENCHMARKS.md). Only what the tasks make is
    collected now."""
    gc.freeze()


@beat_init.connect
def check_arxiv_at_once(sender: object, **_: object) -> None:
    """A beat that was down may have missed an announcement: check now, not an interval later
    (beat's own entry first runs one interval after it starts). Idempotent, as the check is."""
    app.send_task("papers.tasks.import_arxiv")
