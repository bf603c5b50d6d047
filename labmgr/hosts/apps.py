from django.apps import AppConfig


class HostsConfig(AppConfig):
    name = "labmgr.hosts"
    label = "hosts"
    default_auto_field = "django.db.models.BigAutoField"
