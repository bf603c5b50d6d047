from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "labmgr.accounts"
    label = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from labmgr.accounts import receivers  # noqa: F401  (connects the signal receivers)
