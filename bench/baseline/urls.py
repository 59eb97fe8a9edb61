"""URLconf of the bare HTTP baseline, used only by bench/asgi.py (never included in the app's URLs)."""

from django.urls import path

from .views import NoopView

urlpatterns = [
    path("bench/api/noop/", NoopView.as_view(), name="bench-noop"),
]
