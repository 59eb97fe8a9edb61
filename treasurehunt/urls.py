from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from .health import healthz

# A database outage is a 503 to retry, not a 500; the API answers JSON (treasurehunt/errors.py).
handler500 = "treasurehunt.errors.server_error"


def no_favicon(request):
    """Pages without an icon link (the admin's) make browsers ask for /favicon.ico: "none", not a 404."""
    return HttpResponse(status=204, headers={"Cache-Control": "max-age=86400"})


urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", no_favicon, name="favicon"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its init script as a file (?script=): our Content-Security-Policy allows no
    # inline script.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="api/swagger_ui.html"),
        name="swagger-ui",
    ),
    path("api/", include("treasurehunt.api_urls")),
    path("accounts/", include("accounts.urls")),
    path("", include("hunts.urls")),
    path("", include("puzzles.urls")),
]
