"""ASGI entry point: Django for HTTP, Channels for the live stream, the embedded clock around both."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "treasurehunt.settings")
django_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402

from hunts.clock import ClockMiddleware  # noqa: E402
from hunts.routing import websocket_urlpatterns  # noqa: E402
from puzzles.services import release_all_due  # noqa: E402

application = ClockMiddleware(
    ProtocolTypeRouter(
        {
            "http": django_app,
            "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        }
    ),
    tick=release_all_due,
)
