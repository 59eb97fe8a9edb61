"""ASGI entry point: Django for HTTP, Channels for the live stream, the embedded clock around both."""

import gc
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "treasurehunt.settings")
django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application

from treasurehunt.http import ASGIHandler  # noqa: E402

django_app = ASGIHandler()  # each request's middleware and view in one thread (treasurehunt/http.py)

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from hunts.clock import ClockMiddleware  # noqa: E402
from hunts.middleware import OriginRuleMiddleware, stream_auth  # noqa: E402
from hunts.routing import websocket_urlpatterns  # noqa: E402
from puzzles.services import release_all_due  # noqa: E402
from treasurehunt import housekeeping, transport, wsdebug  # noqa: E402
from treasurehunt.memory import ReleaseMemory, collection_watch  # noqa: E402

# daphne's connections write through to the socket, and new ones pass the handshake gate when it is set
# (treasurehunt/transport.py).
transport.install(handshakes=settings.HANDSHAKES_IN_FLIGHT, hold=settings.HANDSHAKE_HOLD_SECONDS)
wsdebug.install()  # autobahn's debug lines cost nothing unless written (treasurehunt/wsdebug.py)
housekeeping.install()  # daphne's passes over every connection in slices (treasurehunt/housekeeping.py)

# DESIGN section 7: origin rule -> session auth -> token header (innermost) -> routes. Around them all:
# the embedded clock, and memory handed back after mass disconnects (treasurehunt/memory.py).
application = ReleaseMemory(
    ClockMiddleware(
        ProtocolTypeRouter(
            {
                "http": django_app,
                "websocket": OriginRuleMiddleware(stream_auth(URLRouter(websocket_urlpatterns))),
            }
        ),
        tick=release_all_due,
    )
)

# A process holding thousands of sockets keeps hundreds of thousands of objects alive, and every full
# collection walks them all: 0.3-1 s pauses with 2,000-5,000 sockets (BENCHMARKS.md). The objects made at
# startup are frozen out of collections (and the sockets' objects as they come, treasurehunt/memory.py),
# and young collections run every 10,000 allocations instead of 700, so fewer short-lived objects survive
# into the old generation. Slow full collections are logged.
gc.collect()
gc.freeze()
gc.set_threshold(10_000, 10, 10)
gc.callbacks.append(collection_watch)
