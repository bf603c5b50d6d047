"""The lab's live stream: `ws/labs/{id}/` relays the lab's events to a browser.

Only the lab's owner, members of a group it is shared with, and admins may subscribe;
anyone else is refused before the handshake completes. One handler per event type.

The stream also carries the watching user's own reservation events (warning before the
end, the end itself): the lab page is where a user works when the booking runs out.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, User

from labmgr import events
from labmgr.labs.models import Lab
from labmgr.labs.selectors import lab_get_visible
from labmgr.reservations import notify

REFUSED = 4403  # the websocket close code of a refused subscription


def may_watch(user: AbstractBaseUser | AnonymousUser, lab_id: int) -> bool:
    # The scope's user is a lazy proxy whose class is the wrapped user's: only a
    # signed-in user is a `User`.
    if not isinstance(user, User):
        return False
    try:
        lab_get_visible(user=user, pk=lab_id)
    except Lab.DoesNotExist:
        return False
    return True


class LabConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None
    reservations: str | None = None

    async def connect(self) -> None:
        lab_id = int(self.scope["url_route"]["kwargs"]["lab"])
        user = self.scope.get("user")
        if user is None or not await database_sync_to_async(may_watch)(user, lab_id):
            await self.close(code=REFUSED)
            return
        self.group = events.lab_group(lab_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.reservations = notify.reservation_group(user.pk)
        await self.channel_layer.group_add(self.reservations, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in (self.group, self.reservations):
            if group is not None:
                await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        """The stream is one way: what a browser sends is ignored unread (parsing it
        would let a 100,000-level JSON frame end the consumer in a RecursionError)."""

    async def deployment_status(self, event: events.DeploymentStatusEvent) -> None:
        await self.send_json(event)

    async def deployment_step(self, event: events.DeploymentStepEvent) -> None:
        await self.send_json(event)

    async def metrics_sample(self, event: events.MetricsSampleEvent) -> None:
        await self.send_json(event)

    async def deployment_live(self, event: events.DeploymentLiveEvent) -> None:
        await self.send_json(event)

    async def scenario_progress(self, event: events.ScenarioProgressEvent) -> None:
        await self.send_json(event)

    async def host_status(self, event: events.HostStatusEvent) -> None:
        await self.send_json(event)

    async def reservation_warning(self, event: events.ReservationWarningEvent) -> None:
        await self.send_json(event)

    async def reservation_ended(self, event: events.ReservationEndedEvent) -> None:
        await self.send_json(event)
