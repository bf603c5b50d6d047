from django.apps import AppConfig


class WebConfig(AppConfig):
    """The browser GUI: dashboard, lab editor, lab page, topology and terminals."""

    name = "labmgr.web"
    label = "web"
    verbose_name = "Web interface"
