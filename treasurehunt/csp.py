"""A Content Security Policy on every response: our pages load scripts, styles and sockets from us only.

Nothing inline is allowed (no `<script>` blocks, `<style>` blocks or `style=` attributes), so text that a
player wrote and that slipped past escaping still could not run. A view may set its own policy first.
"""

from asgiref.sync import iscoroutinefunction
from django.utils.decorators import sync_and_async_middleware

POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self' ws: wss:",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
    ]
)


def _with_policy(response):
    response.headers.setdefault("Content-Security-Policy", POLICY)
    return response


@sync_and_async_middleware
def ContentSecurityPolicyMiddleware(get_response):
    """Adds the policy; sync and async (daphne runs the chain sync in one thread: treasurehunt/http.py)."""
    if iscoroutinefunction(get_response):

        async def middleware(request):
            return _with_policy(await get_response(request))

    else:

        def middleware(request):
            return _with_policy(get_response(request))

    return middleware
