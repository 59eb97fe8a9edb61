"""/accounts/: Django's auth views (our throttled login first, so it wins), sign-up and the profile."""

from django.urls import include, path

from . import views

account_patterns = [
    path("signup/", views.signup, name="signup"),
    path("profile/", views.profile, name="profile"),
    path("profile/token/", views.token_create, name="token_create"),
    path("profile/token/regenerate/", views.token_regenerate, name="token_regenerate"),
]

urlpatterns = [
    # Django's auth names (login, logout, password_change, ...) stay global, as LOGIN_URL expects.
    path("login/", views.LoginView.as_view(), name="login"),
    path("", include("django.contrib.auth.urls")),
    path("", include((account_patterns, "accounts"))),
]
