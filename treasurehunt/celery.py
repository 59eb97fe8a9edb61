"""The Celery app: Redis broker in production, eager in-process tasks in the embedded default."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "treasurehunt.settings")

app = Celery("treasurehunt")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def enqueue(task_name: str, *args) -> None:
    """Queue a task once the surrounding transaction commits; a broker failure is logged, and the sweeper retries."""
    import logging

    from django.db import transaction
    from django.utils.module_loading import import_string

    def send():
        try:
            import_string(task_name).apply_async(args=args)
        except Exception:
            logging.getLogger(__name__).exception("could not enqueue %s%r", task_name, args)

    transaction.on_commit(send, robust=True)
