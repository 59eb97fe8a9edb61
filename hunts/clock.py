"""The embedded clock: one asyncio task on daphne's loop calling release_due every second."""

import asyncio
import logging

from asgiref.sync import sync_to_async
from django.conf import settings

log = logging.getLogger(__name__)


class ClockMiddleware:
    """Starts the clock on the first scope it sees (daphne has no lifespan events)."""

    def __init__(self, app, *, tick):
        self.app = app
        self.tick = tick
        self.task: asyncio.Task | None = None

    async def __call__(self, scope, receive, send):
        if self.task is None and settings.EMBEDDED_CLOCK:
            self.task = asyncio.get_running_loop().create_task(self.run())
        return await self.app(scope, receive, send)

    async def run(self):
        # thread_sensitive=False: ticks must not queue behind request handlers on the shared thread.
        tick = sync_to_async(self.tick, thread_sensitive=False)
        while True:
            try:
                await tick()
            except Exception:
                log.exception("clock tick failed")
            await asyncio.sleep(settings.CLOCK_INTERVAL_SECONDS)
