"""API token authentication (`Authorization: Token <key>`), as DRF's, read in one written-out statement.

DRF's own builds an ORM query for every request: a tenth of daphne's CPU for an API guess
(`bench.run --only http --profile http`, BENCHMARKS.md "Fixes"). Here the token's user comes from one
statement, and under /api/hunts/<hunt>/ the same statement reads the hunt and the caller's team on it
(services.token_access), which the view then takes instead of reading them again (HuntScoped).
"""

from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from .services import token_access


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate(self, request):
        self.request = request  # DRF makes the authenticators anew for every request
        return super().authenticate(request)

    def authenticate_credentials(self, key):
        kwargs = (getattr(self.request, "parser_context", None) or {}).get("kwargs") or {}
        slug = kwargs.get("hunt") if isinstance(kwargs.get("hunt"), str) else None
        user, hunt, team = token_access(key=key, hunt_slug=slug)
        if user is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        if slug is not None:
            self.request.hunt_access = (slug, hunt, team)  # read by HuntScoped (services.hunt_and_team)
        return user, Token(key=key, user=user)
