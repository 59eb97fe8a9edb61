"""Structured logs: one request id per HTTP request, in the X-Request-ID header and in every log line.

RequestIdMiddleware takes the caller's X-Request-ID (a proxy's, when it is a short token) or makes one,
echoes it on the response, and logs one line per request. RequestIdFilter puts the id of the request being
served (or "-") on every record; JsonFormatter writes a record as one JSON object per line, with the
`extra` fields a call passed (e.g. guess_id when a guess is judged). LOG_FORMAT picks plain or json.
"""

import contextvars
import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

HEADER = "X-Request-ID"
VALID_ID = re.compile(r"[A-Za-z0-9._-]{1,64}\Z")

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
log = logging.getLogger("treasurehunt.requests")


class RequestIdMiddleware:
    """Sync and async; under daphne it runs sync in the request's thread (treasurehunt/http.py), the id in
    the context that sync_to_async copied there."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.async_mode:
            return self._acall(request)
        token, started = self._begin(request)
        try:
            return self._end(request, self.get_response(request), started)
        finally:
            request_id.reset(token)

    async def _acall(self, request):
        token, started = self._begin(request)
        try:
            return self._end(request, await self.get_response(request), started)
        finally:
            request_id.reset(token)

    def _begin(self, request):
        given = request.headers.get(HEADER, "")
        request.request_id = given if VALID_ID.match(given) else uuid.uuid4().hex
        return request_id.set(request.request_id), time.monotonic()

    def _end(self, request, response, started: float):
        response[HEADER] = request.request_id
        elapsed_ms = round((time.monotonic() - started) * 1000, 1)
        # The path without its query string: tokens and codes stay out of the logs.
        log.info(
            "%s %s %s %sms",
            request.method,
            request.path,
            response.status_code,
            elapsed_ms,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": elapsed_ms,
            },
        )
        return response


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


# Attributes every LogRecord has: anything else on a record came from `extra`.
STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in STANDARD_ATTRS and key not in data:
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)
