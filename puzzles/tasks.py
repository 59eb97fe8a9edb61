"""Celery tasks: fetch by id, call the service. Each is safe to run twice."""

from celery import shared_task

from . import services


@shared_task(acks_late=True, reject_on_worker_lost=True, time_limit=30, soft_time_limit=20)
def judge_guess_task(guess_id: int) -> None:
    services.judge_guess(guess_id=guess_id)


@shared_task(acks_late=True, reject_on_worker_lost=True, time_limit=30, soft_time_limit=20)
def claim_treasures_task(team_id: int) -> None:
    services.claim_due_treasures(team_id=team_id)


@shared_task(time_limit=10, soft_time_limit=8, expires=2)
def tick() -> None:
    services.release_all_due()


@shared_task(time_limit=30, soft_time_limit=25, expires=5)
def sweep() -> None:
    services.sweep()
