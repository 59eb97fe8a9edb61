"""Sign-up and a login form that follows the token endpoint's failed-login throttle."""

from django import forms
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm

from hunts.throttling import client_address, login_attempt


class SignupForm(UserCreationForm):
    email = forms.EmailField(
        required=False, help_text="Optional: only used to reset your password if you forget it."
    )

    class Meta(UserCreationForm.Meta):
        fields = (*UserCreationForm.Meta.fields, "email")
        help_texts = {"username": "Letters, digits and @/./+/-/_ only; at most 150 characters."}


class ThrottledAuthenticationForm(AuthenticationForm):
    """Refuses a throttled (username, address) pair before checking the password; counts failures.

    A throttled pair raises hunts.errors.RateLimited out of is_valid(), for the view to show with the wait.
    """

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        address = client_address(self.request)
        with login_attempt(username, address) as attempt:
            try:
                return super().clean()
            except forms.ValidationError as exc:
                if exc.code == "invalid_login":
                    attempt.failed()
                raise
