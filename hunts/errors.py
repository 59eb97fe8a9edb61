"""Errors services raise for broken rules (DESIGN section 3), besides ValidationError and PermissionDenied."""

import math


class NotFound(Exception):
    """The object does not exist, or exists but is not visible to the caller."""

    def __init__(self, message: str = "Not found."):
        super().__init__(message)
        self.message = message


class Conflict(Exception):
    """The request clashes with the current state (for example: no treasure left)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class RateLimited(Exception):
    """Too many attempts; the caller may retry after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float):
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(message)
        self.message = message
