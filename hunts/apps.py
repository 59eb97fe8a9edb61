from django.apps import AppConfig


class HuntsConfig(AppConfig):
    name = "hunts"
    default_auto_field = "django.db.models.BigAutoField"
