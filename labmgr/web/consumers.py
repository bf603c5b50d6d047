"""The dashboard's live stream: `ws/me/` relays to a signed-in user the status of every
lab they may see, the state of the hosts (and, for the Images page, that a host's images
changed) and their own reservation warnings.

A connection joins the groups `labmgr.events` already publishes to: `lab.<id>` of each lab
the user may see when it connects, `host.<slug>` of every host, `reservations.<user id>`
and `user.<id>` (logging out ends the stream). Each `deployment.status` is checked again
against `labmgr.accounts.permissions` as it is delivered, so a lab unshared meanwhile
stops reaching its former readers; a lab that becomes visible later is heard from the
next connection (the dashboard has no row for it before a reload anyway). Steps and
metrics travel on the same lab groups; the dashboard shows neither, so they are dropped
here instead of being sent to the browser.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, User

from labmgr import events
from labmgr.accounts.permissions import Action, Resource, allowed
from labmgr.hosts.models import Host
from labmgr.labs.consumers import REFUSED
from labmgr.labs.models import Lab
from labmgr.labs.selectors import lab_list_visible
from labmgr.reservations.notify import reservation_group
from labmgr.web import selectors


def stream_groups(user: AbstractBaseUser | AnonymousUser | None) -> list[str]:
    """The groups a user's dashboard stream listens to; empty for the anonymous."""
    # The scope's user is a lazy proxy whose class is the wrapped user's: only a
    # signed-in user is a `User`.
    if not isinstance(user, User):
        return []
    labs = lab_list_visible(user=user).values_list("pk", flat=True)
    hosts = Host.objects.values_list("slug", flat=True)
    return [
        *(events.lab_group(pk) for pk in labs),
        *(events.host_group(slug) for slug in hosts),
        reservation_group(user.pk),
        events.user_group(user.pk),
    ]


def may_see_status(user: AbstractBaseUser | AnonymousUser | None, lab_id: int) -> bool:
    """Whether the user may still follow the lab's stream (the lab may be gone)."""
    if not isinstance(user, User):
        return False
    lab = Lab.objects.prefetch_related("shared_with").filter(pk=lab_id).first()
    return lab is not None and allowed(user, Resource.STREAM, Action.VIEW, lab)


def host_row(slug: str) -> dict[str, Any] | None:
    """What the dashboard shows of a host beside its status: active deployments, load."""
    rows = selectors.dashboard_hosts(slug=slug)
    return {"deployments": rows[0].deployments, "load": rows[0].load} if rows else None


class DashboardConsumer(AsyncJsonWebsocketConsumer):
    groups_joined: list[str]
    # A host's status reaches both its group and the groups of labs deployed on it: a
    # repeat of the last status sent for that host is the same event heard twice.
    host_sent: dict[str, str]

    async def connect(self) -> None:
        self.groups_joined = []
        self.host_sent = {}
        self.user = self.scope.get("user")
        groups = await database_sync_to_async(stream_groups)(self.user)
        if not groups:
            await self.close(code=REFUSED)
            return
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined = groups
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        """The stream is one way: what a browser sends is ignored unread (parsing it
        would let a 100,000-level JSON frame end the consumer in a RecursionError)."""

    async def deployment_status(self, event: events.DeploymentStatusEvent) -> None:
        if await database_sync_to_async(may_see_status)(self.user, event["lab"]):
            label = selectors.status_label(event["status"])
            await self.send_json({**event, "label": label})

    async def host_status(self, event: events.HostStatusEvent) -> None:
        if self.host_sent.get(event["host"]) == event["status"]:
            return
        self.host_sent[event["host"]] = event["status"]
        row = await database_sync_to_async(host_row)(event["host"])
        await self.send_json({**event, **(row or {})})

    async def host_images(self, event: events.HostImagesEvent) -> None:
        """For the Images page, which follows this stream too; it reads the list again
        through the API, where each user sees only the deployments theirs to see."""
        await self.send_json(event)

    async def reservation_warning(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def reservation_ended(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def deployment_step(self, event: events.DeploymentStepEvent) -> None:
        """Steps belong to the lab's page, not the dashboard."""

    async def metrics_sample(self, event: events.MetricsSampleEvent) -> None:
        """Samples belong to the lab's page, not the dashboard."""

    async def deployment_live(self, event: events.DeploymentLiveEvent) -> None:
        """Live changes belong to the lab's page, not the dashboard."""

    async def scenario_progress(self, event: events.ScenarioProgressEvent) -> None:
        """Scenario runs belong to the lab's page, not the dashboard."""

    async def session_ended(self, event: events.SessionEndedEvent) -> None:
        await self.close(code=REFUSED)
