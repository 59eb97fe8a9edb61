"""Django's ASGI handler with each request's middleware and view run in one worker thread.

Django's own handler builds the middleware chain in async mode. Every middleware that can run both ways
then runs its sync hooks through sync_to_async, one hop to Django's thread and back per hook, and one
sync-only middleware (WhiteNoise) turns the rest of the chain back through async_to_sync: about fifteen
hops between the event loop and a thread for one API request (`bench.run --only http --profile http`:
BENCHMARKS.md, "Fixes"). Here the chain is built in sync mode, as under WSGI, and a request makes one
hop: a thread of the loop's pool runs the whole chain and the view, as a threaded WSGI server's thread
would, so requests that wait on the database overlap. The request_started and request_finished signals,
the body and the response streaming stay Django's own.
"""

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler as DjangoASGIHandler
from django.db import close_old_connections


class ASGIHandler(DjangoASGIHandler):
    def load_middleware(self, is_async=False):
        super().load_middleware(is_async=False)

    async def get_response_async(self, request):
        return await sync_to_async(self._respond, thread_sensitive=False)(request)

    def _respond(self, request):
        # This thread's database connections go back (to the pool) after each request, as Django's own
        # request_started and request_finished do for the thread they run in.
        close_old_connections()
        try:
            return self.get_response(request)
        finally:
            close_old_connections()
