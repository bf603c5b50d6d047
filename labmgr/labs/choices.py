"""Closed sets of values a lab's rows may hold, mirroring the labfile's."""

from django.db import models

from labplan.drivers import DRIVERS

# The labfile's drivers, read from labplan in its order; each is its own label. The ignore:
# django-stubs types only the member lookup `TextChoices(value)`, not Django's functional
# API with (name, (value, label)) pairs.
NetworkDriver = models.TextChoices(
    "NetworkDriver",
    [(name.upper(), (name, name)) for name in DRIVERS],  # type: ignore[call-overload]
)


class LabfileFormat(models.TextChoices):
    YAML = "yaml", "YAML"
    JSON = "json", "JSON"
