"""The Celery app: Redis broker in production, eager in-process tasks in the embedded default."""

import logging
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "treasurehunt.settings")

app = Celery("treasurehunt")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The clock: release_due every 2 s and the sweeper every 5 s, on their own queue and worker, expiring
# rather than piling up behind a stopped worker.
app.conf.beat_schedule = {
    "clock-tick": {
        "task": "puzzles.tasks.tick",
        "schedule": 2.0,
        "options": {"queue": "clock", "expires": 2},
    },
    "sweeper": {"task": "puzzles.tasks.sweep", "schedule": 5.0, "options": {"queue": "clock", "expires": 5}},
}

log = logging.getLogger(__name__)


def enqueue(task_name: str, *args) -> None:
    """Queue a task once the surrounding transaction commits; a failure is logged and the sweeper retries."""
    from django.db import transaction
    from django.utils.module_loading import import_string

    def send():
        try:
            import_string(task_name).apply_async(args=args)
        except Exception:
            log.exception("could not enqueue %s%r", task_name, args)

    transaction.on_commit(send, robust=True)
