"""Closed sets of values a lab's rows may hold, mirroring the labfile's."""

from django.db import models

from labplan.drivers import DRIVERS

# The labfile's drivers, read from labplan in its order; each is its own label.
NetworkDriver = models.TextChoices(
    "NetworkDriver", [(name.upper(), (name, name)) for name in DRIVERS]
)


class LabfileFormat(models.TextChoices):
    YAML = "yaml", "YAML"
    JSON = "json", "JSON"
