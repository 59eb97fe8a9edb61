"""The last-resort error page: a database outage is a 503 to retry, never a 500; the API answers JSON."""

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.template import loader
from django.views import defaults

RETRY_AFTER_SECONDS = 5


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def server_error(request):
    """handler500: an uncaught OperationalError or InterfaceError (database down, connection killed) is 503.

    The page is rendered without the request: its context processors would query the database again.
    """
    exc = sys.exc_info()[1]
    if isinstance(exc, OperationalError | InterfaceError):
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        if _is_api(request):
            detail = {"detail": "The database is unavailable; try again shortly."}
            return JsonResponse(detail, status=503, headers=headers)
        return HttpResponse(loader.get_template("503.html").render(), status=503, headers=headers)
    if _is_api(request):
        return JsonResponse({"detail": "Server error."}, status=500)
    return defaults.server_error(request)
