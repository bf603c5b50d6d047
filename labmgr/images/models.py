"""Registry logins admins set, and archives admins upload for a host's agent to load."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from labmgr.hosts.models import Host


class RegistryLogin(models.Model):
    """An admin's credentials for one registry, as a reference names it ("docker.io",
    "registry.example:5000"). The password is never shown back: it leaves the control
    plane only sealed under a host's key (labplan.envelope.seal_secret)."""

    registry = models.CharField(max_length=255, unique=True)
    username = models.CharField(max_length=255)
    password = models.CharField(max_length=1024)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["registry"]

    def __str__(self) -> str:
        return f"{self.username}@{self.registry}"


class UploadState(models.TextChoices):
    RECEIVING = "receiving", "Receiving"
    SENT = "sent", "Sent to the host"


class ImageUpload(models.Model):
    """An image archive an admin is uploading in chunks to one host: the chunks wait on
    the Redis list `labplan.messages.image_upload_key(key)` until the agent loads them."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="image_uploads")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="image_uploads"
    )
    # Names the Redis list: random, so no one guesses another's upload.
    key = models.CharField(max_length=32, unique=True, editable=False)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    name = models.CharField(max_length=512, blank=True, default="")
    chunks = models.PositiveIntegerField(default=0)
    received = models.PositiveBigIntegerField(default=0)
    state = models.CharField(
        max_length=16, choices=UploadState.choices, default=UploadState.RECEIVING
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"upload {self.key[:8]} to {self.host_id} ({self.received}/{self.size} bytes)"
