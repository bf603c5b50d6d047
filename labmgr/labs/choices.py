"""Closed sets of values a lab's rows may hold, mirroring the labfile's."""

from django.db import models


class NetworkDriver(models.TextChoices):
    BRIDGE = "bridge", "bridge"
    HOST = "host", "host"
    NONE = "none", "none"
    MACVLAN = "macvlan", "macvlan"
    IPVLAN = "ipvlan", "ipvlan"
    OVERLAY = "overlay", "overlay"


class LabfileFormat(models.TextChoices):
    YAML = "yaml", "YAML"
    JSON = "json", "JSON"
