"""Django's ASGI handler with each request's middleware and view run in one worker thread.

Django's own handler builds the middleware chain in async mode. Every middleware that can run both ways
then runs its sync hooks through sync_to_async, one hop to a thread and back per hook, one sync-only
middleware (WhiteNoise) turns the rest of the chain back through async_to_sync, and every request gets a
thread of its own: more than ten hops between the event loop and a thread for one API request
(`bench.run --only http --profile http`: BENCHMARKS.md, fix 18). Here the chain is built in sync mode, as
under WSGI, and a request makes one hop: a thread of the HTTP pool (HTTP_THREADS: cores + 4) runs the
whole chain and the view, as a threaded WSGI server's thread would, so requests that wait on the database
overlap. The pool is the requests' own: slow requests (a password hash, an export) never hold the threads
that the live stream's connects, guesses and pings run in (the event loop's default pool). The
request_started and request_finished signals, the body and the response streaming stay Django's own,
without a thread of its own per request (`ASGIHandler.__call__`).
"""

import threading
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler as DjangoASGIHandler
from django.db import close_old_connections, reset_queries

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def executor() -> ThreadPoolExecutor:
    """This process's HTTP pool, made on first use."""
    global _executor
    if _executor is None:  # every request asks: the lock only while there is none yet
        with _executor_lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(max_workers=settings.HTTP_THREADS, thread_name_prefix="http")
    return _executor


class ASGIHandler(DjangoASGIHandler):
    async def __call__(self, scope, receive, send):
        """Django's entry point without its ThreadSensitiveContext around each request.

        That context gives a request's thread-sensitive sync code (a sync view or middleware under Django's
        own handler) a thread of the request's own: a new thread per request, and a second one started to
        shut it down at the end. Here the chain and the view run in the HTTP pool, and all that is left
        thread-sensitive is the signals' sync receivers (request_started; request_finished, from the
        response's close), which now run in asgiref's one sync thread of the process: no thread is started
        per request (BENCHMARKS.md, fix 30).
        """
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)

    def load_middleware(self, is_async=False):
        super().load_middleware(is_async=False)

    async def get_response_async(self, request):
        return await sync_to_async(self._respond, thread_sensitive=False, executor=executor())(request)

    def _respond(self, request):
        # What Django's request_started and request_finished do for the thread they run in, for this one:
        # its database connections go back to the pool, and its query log (DEBUG) starts empty.
        reset_queries()
        close_old_connections()
        try:
            return self.get_response(request)
        finally:
            close_old_connections()
