"""Admin of registry logins: an admin sets one per registry; its password is written,
never shown back (left empty on a change, the stored one is kept)."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from labmgr.images.logins import REGISTRY_RE
from labmgr.images.models import RegistryLogin


class RegistryLoginForm(forms.ModelForm[RegistryLogin]):
    password = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        strip=False,
        max_length=1024,
        help_text="Written, never shown back. Leave it empty to keep the current one.",
    )

    class Meta:
        model = RegistryLogin
        fields = ["registry", "username", "password"]
        help_texts = {
            "registry": 'As an image reference names it: "docker.io", "registry.example:5000".'
        }

    def clean_registry(self) -> str:
        registry = str(self.cleaned_data["registry"]).strip()
        if registry in ("index.docker.io", "registry-1.docker.io"):
            registry = "docker.io"
        if not REGISTRY_RE.fullmatch(registry) or len(registry) > 255:
            raise forms.ValidationError(
                f"{registry[:80]!r} is not a registry: a host name or address, and :port "
                'if it needs one ("registry.example:5000").'
            )
        return registry

    def clean_password(self) -> str:
        password = str(self.cleaned_data.get("password") or "")
        if not password and self.instance.pk:
            return self.instance.password
        if not password:
            raise forms.ValidationError("A new login needs its password.")
        return password


@admin.register(RegistryLogin)
class RegistryLoginAdmin(admin.ModelAdmin[RegistryLogin]):
    form = RegistryLoginForm
    list_display = ["registry", "username", "updated"]
    search_fields = ["registry", "username"]
