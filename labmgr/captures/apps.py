from django.apps import AppConfig


class CapturesConfig(AppConfig):
    name = "labmgr.captures"
    label = "captures"
    default_auto_field = "django.db.models.BigAutoField"
