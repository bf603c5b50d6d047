"""The lab's REST representation and the shapes of its request bodies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from labmgr.api.fields import DateTimeField, DetailUrl
from labmgr.api.renderers import RawJSON
from labmgr.labs import spec
from labmgr.labs.models import Lab


@extend_schema_field(OpenApiTypes.OBJECT)
class LabfileField(serializers.JSONField):
    """A labfile tree; see /api/labfile.schema.json for its shape."""


class LabSerializer(serializers.ModelSerializer[Lab]):
    url = DetailUrl(view_name="lab-detail")
    owner = serializers.CharField(source="owner.username", read_only=True)
    shared_with = serializers.SerializerMethodField()
    labfile = serializers.SerializerMethodField()
    created = DateTimeField(read_only=True)
    updated = DateTimeField(read_only=True)

    class Meta:
        model = Lab
        fields = [
            "id",
            "url",
            "name",
            "description",
            "owner",
            "shared_with",
            "created",
            "updated",
            "labfile",
        ]
        read_only_fields = fields

    def to_representation(self, lab: Lab) -> dict[str, Any]:
        """Each field's own representation, without the generic walk over the fields:
        a page of 50 labs under 20 clients at once is where this runs most."""
        fields = self.fields
        return {
            "id": lab.pk,
            "url": fields["url"].to_representation(lab),
            "name": lab.name,
            "description": lab.description,
            "owner": self.get_owner(lab),
            "shared_with": self.get_shared_with(lab),
            "created": fields["created"].to_representation(lab.created),
            "updated": fields["updated"].to_representation(lab.updated),
            "labfile": self.get_labfile(lab),
        }

    def get_owner(self, lab: Lab) -> str:
        # The list reads the name alone (selectors.lab_page_visible), one lab its owner.
        name: str | None = getattr(lab, "owner_name", None)
        return name if name is not None else lab.owner.username

    def get_shared_with(self, lab: Lab) -> list[str]:
        names: list[str] | None = getattr(lab, "shared_group_names", None)
        if names is not None:  # the list's (selectors.lab_attach_group_names)
            return names
        return sorted(group.name for group in lab.groups())

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_labfile(self, lab: Lab) -> Mapping[str, Any]:
        """The normalised labfile, every default shown: the JSON text its services keep
        (spec.lab_document), written into the response as it is stored."""
        if lab.document:
            return RawJSON(lab.document)
        return spec.lab_document(lab)


class GroupNamesField(serializers.ListField):
    child = serializers.CharField(max_length=150)


class LabWriteSerializer(serializers.Serializer[Any]):
    """POST and PUT: the whole labfile, optionally the groups to share the lab with."""

    labfile = LabfileField()
    shared_with = GroupNamesField(required=False)


class LabPatchSerializer(serializers.Serializer[Any]):
    """PATCH: any of the description, the groups, the whole labfile."""

    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    shared_with = GroupNamesField(required=False)
    labfile = LabfileField(required=False)


class PlanSerializer(serializers.Serializer[Any]):
    plan = serializers.DictField(help_text="The plan as labplan.codec encodes it.")
    commands = serializers.ListField(
        child=serializers.CharField(), help_text="Equivalent shell commands, in order."
    )
