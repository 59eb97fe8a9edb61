"""The Celery app: Redis broker in production, eager in-process tasks in the embedded default.

Queues (routes in settings): `judge` (guess checks), `treasure` (claims), `clock` (the release_due tick,
which also sends the coalesced leaderboard push, and the sweeper), each with its own worker in
deploy/Procfile so that the clock never waits behind checks.
"""

import logging
import os

from celery import Celery, signals

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
# Celery's own scheduler, except that it sleeps until an entry is due instead of spinning through the last
# 10 ms before each tick (treasurehunt/beat.py).
app.conf.beat_scheduler = "treasurehunt.beat:Scheduler"

# Celery's Django fixup closes the database connection pool around every task in a prefork child, so each
# check would open new PostgreSQL connections (about 25 ms on a busy 2-core machine, half a check's time).
# With a reuse count the fixup recycles the pool only every 1000 tasks; `_release_connection` hands the
# connection back to the pool after each task, where the pool's health check vets it before the next.
app.conf.CELERY_DB_REUSE_MAX = 1000


@signals.task_postrun.connect
def _release_connection(task=None, **kwargs) -> None:
    if task is not None and not task.request.is_eager:
        from django.db import close_old_connections

        close_old_connections()


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
