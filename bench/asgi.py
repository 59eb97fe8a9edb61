"""daphne entry point for benchmarks only: the app's ASGI application unchanged, plus the bare baselines.

    daphne ... bench.asgi:application

Paths under /bench/ go to the baselines (bench/baseline/); every other scope goes to
treasurehunt.asgi.application, so the app and its baselines share one process, one channel layer and
one event loop. The app never routes /bench/: these routes exist only in a daphne started with this module.
"""

from channels.routing import URLRouter
from django.urls import path

from treasurehunt.asgi import application as app  # sets up Django first
from treasurehunt.http import ASGIHandler  # the app's own HTTP handler

from .baseline.consumers import BareConsumer  # noqa: E402

BASELINE_URLCONF = "bench.baseline.urls"


class BaselineHTTPHandler(ASGIHandler):
    """The app's HTTP handler (same middleware and authentication), resolving against the baseline URLconf."""

    def create_request(self, scope, body_file):
        request, error = super().create_request(scope, body_file)
        if request is not None:
            request.urlconf = BASELINE_URLCONF
        return request, error


baseline_http = BaselineHTTPHandler()
baseline_websocket = URLRouter([path("bench/ws/<int:team>/", BareConsumer.as_asgi())])


async def application(scope, receive, send):
    if scope["type"] in ("http", "websocket") and scope["path"].startswith("/bench/"):
        handler = baseline_http if scope["type"] == "http" else baseline_websocket
        return await handler(scope, receive, send)
    return await app(scope, receive, send)
