"""What every page shares: service errors shown the way DESIGN section 3 says, and the hunt lookup."""

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import render

from .errors import Conflict, NotFound, RateLimited
from .services import hunt_and_team, team_required


class FormInvalid(Exception):
    """The form's own validation failed; its errors are already on it."""


class service_errors:  # lower case: used like contextlib's context managers
    """Run one service call; a broken rule becomes a form error, a message, a 404 or a 403 page.

        with service_errors(request, form) as call:
            data = call.valid()
            submit_guess(..., text=data["answer"])
            return redirect(...)
        return call.render(request, "puzzles/puzzle_detail.html", context)

    An invalid form -> 400 with its errors; ValidationError -> errors on the form (or a message without
    one), 400; PermissionDenied -> message, 403 (or Django's 403 page with `forbidden_page`); NotFound ->
    404 page; Conflict -> message, 409; RateLimited -> message with the wait, 429 with Retry-After.
    Other exceptions pass through.
    """

    def __init__(self, request, form=None, *, forbidden_page: bool = False):
        self.request = request
        self.form = form
        self.forbidden_page = forbidden_page
        self.status = 200
        self.retry_after: int | None = None

    def __enter__(self):
        return self

    def valid(self) -> dict:
        """The form's cleaned data; an invalid form leaves the block as a 400 with the form's errors."""
        if not self.form.is_valid():
            raise FormInvalid
        return self.form.cleaned_data

    def __exit__(self, exc_type, exc, tb):
        if exc is None:
            return False
        if isinstance(exc, FormInvalid):
            self.status = 400
        elif isinstance(exc, ValidationError):
            self._validation_error(exc)
            self.status = 400
        elif isinstance(exc, NotFound):
            raise Http404(exc.message) from exc
        elif isinstance(exc, PermissionDenied):
            if self.forbidden_page:
                return False
            messages.error(self.request, str(exc) or "You may not do that.")
            self.status = 403
        elif isinstance(exc, Conflict):
            messages.error(self.request, exc.message)
            self.status = 409
        elif isinstance(exc, RateLimited):
            text = exc.message
            if f"{exc.retry_after} s" not in text:
                text = f"{text} Try again in {exc.retry_after} s."
            messages.error(self.request, text)
            self.status, self.retry_after = 429, exc.retry_after
        else:
            return False
        return True

    def _validation_error(self, exc: ValidationError) -> None:
        form = self.form
        if hasattr(exc, "error_dict"):
            for field, errors in exc.error_dict.items():
                for message in (m for e in errors for m in e.messages):
                    if form is not None and field in form.fields:
                        form.add_error(field, message)
                    elif form is not None:
                        form.add_error(None, message)
                    else:
                        messages.error(self.request, message)
        elif form is not None:
            form.add_error(None, exc.messages)
        else:
            for message in exc.messages:
                messages.error(self.request, message)

    def respond(self, response: HttpResponse) -> HttpResponse:
        """Give the page re-rendered after a refused call the status (and Retry-After) of the error."""
        response.status_code = self.status
        if self.retry_after is not None:
            response["Retry-After"] = str(self.retry_after)
        return response

    def render(self, request, template: str, context: dict) -> HttpResponse:
        return self.respond(render(request, template, context))


def hunt_page(*, team: bool = False):
    """Resolve `<hunt>` (404 when unknown or unpublished) and the user's team; `team=True` needs one.

    The view is called as view(request, hunt, team, **kwargs). Team pages need a login (anonymous users
    go to the login page) and a membership: a non-member gets the 404 page, like an API call would.
    """

    def decorator(view):
        @wraps(view)
        def wrapper(request, hunt: str, **kwargs):
            try:
                hunt_obj, team_obj = hunt_and_team(slug=hunt, user=request.user)  # as the API reads them
                if team:
                    team_obj = team_required(team_obj)
                return view(request, hunt_obj, team_obj, **kwargs)
            except NotFound as exc:
                raise Http404(exc.message) from exc

        return login_required(wrapper) if team else wrapper

    return decorator


def staff_required(view):
    """Staff only: anonymous users go to the login page, everyone else gets the 403 page."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("The live view is for staff only.")
        return view(request, *args, **kwargs)

    return login_required(wrapper)
