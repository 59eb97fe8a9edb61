"""Template helpers of the pages: durations, verdict labels and static files that may not exist yet."""

from datetime import datetime, timedelta

from django import template
from django.contrib.staticfiles import finders
from django.templatetags.static import static
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from puzzles.rendering import render_markdown

register = template.Library()

VERDICTS = {"correct": "Correct", "partial": "Partial", "incorrect": "Incorrect", "pending": "Checking…"}


@register.simple_tag
def optional_static(path: str) -> str:
    """The URL of a static file, or "" when it does not exist: a missing script must not break a page."""
    try:
        return static(path) if finders.find(path) else ""
    except ValueError:  # the manifest storage does not know the file
        return ""


@register.filter
def duration(value) -> str:
    """Seconds (or a timedelta, or a future datetime) as "2 d 3 h", "3 h 5 min" or "4 min 10 s"."""
    if isinstance(value, datetime):
        value = value - timezone.now()
    if isinstance(value, timedelta):
        value = value.total_seconds()
    seconds = max(0, int(value or 0))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


@register.filter
def seconds_until(value: datetime) -> int:
    return max(0, int((value - timezone.now()).total_seconds()))


@register.filter
def verdict(status: str) -> str:
    return VERDICTS.get(status, status)


@register.filter
def markdown(text: str) -> SafeString:
    """Author Markdown as HTML; safe to mark so because render_markdown sanitizes it with nh3."""
    return mark_safe(render_markdown(text))
