"""WebSocket routes of the live stream."""

from django.urls import path

from .consumers import HuntConsumer

websocket_urlpatterns = [
    path("ws/hunts/<slug:hunt>/", HuntConsumer.as_asgi()),
]
