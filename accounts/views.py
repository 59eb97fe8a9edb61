"""Sign-up, a throttled login and the profile with the API token."""

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from rest_framework.authtoken.models import Token

from hunts.web import service_errors

from .forms import SignupForm, ThrottledAuthenticationForm
from .services import create_token, regenerate_token


class LoginView(auth_views.LoginView):
    form_class = ThrottledAuthenticationForm

    def post(self, request, *args, **kwargs):
        with service_errors(request) as call:
            return super().post(request, *args, **kwargs)
        # Throttled: the password was not checked; show an empty form with the wait.
        form = self.form_class(request, initial={"username": request.POST.get("username", "")})
        return call.respond(self.render_to_response(self.get_context_data(form=form)))


def _safe_next(request) -> str | None:
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return None


def signup(request):
    if request.user.is_authenticated:
        return redirect("accounts:profile")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.get_username()}! Pick a hunt to join.")
        return redirect(_safe_next(request) or "hunts:list")
    status = 400 if form.errors else 200
    return render(request, "accounts/user_signup.html", {"form": form}, status=status)


@login_required
def profile(request):
    token = Token.objects.filter(user=request.user).first()
    return render(request, "accounts/user_profile.html", {"token": token})


@login_required
@require_POST
def token_create(request):
    return _token_action(request, create_token, "Your API token is ready.")


@login_required
@require_POST
def token_regenerate(request):
    return _token_action(
        request, regenerate_token, "A new API token replaced the old one; update your clients."
    )


def _token_action(request, service, success: str):
    """Run a token service for the signed-in user, then back to the profile with its outcome as a message."""
    with service_errors(request):
        service(user=request.user)
        messages.success(request, success)
    return redirect("accounts:profile")
