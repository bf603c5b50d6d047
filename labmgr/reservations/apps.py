from django.apps import AppConfig


class ReservationsConfig(AppConfig):
    name = "labmgr.reservations"
    label = "reservations"
    default_auto_field = "django.db.models.BigAutoField"
