from django.apps import AppConfig


def end_sockets_on_logout(sender, request, user, **kwargs):
    """Logging out ends the user's open sockets (session.ended, then close 4401)."""
    from .events import end_user_sessions

    if user is not None:
        end_user_sessions(user.pk)


class HuntsConfig(AppConfig):
    name = "hunts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.contrib.auth.signals import user_logged_out

        from . import checks  # noqa: F401  registers the database checks

        user_logged_out.connect(end_sockets_on_logout, dispatch_uid="hunts.end_sockets_on_logout")
