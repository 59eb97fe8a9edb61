"""WebSocket routes of the live stream."""

websocket_urlpatterns: list = []
