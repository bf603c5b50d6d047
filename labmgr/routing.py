"""Websocket routes: the lab's live stream and the node terminals."""

from django.urls import re_path

from labmgr.deployments.terminal import TerminalConsumer
from labmgr.labs.consumers import LabConsumer

websocket_urlpatterns = [
    re_path(r"^ws/labs/(?P<lab>[0-9]{1,18})/?$", LabConsumer.as_asgi()),
    re_path(
        r"^ws/labs/(?P<lab>[0-9]{1,18})/nodes/(?P<node>[a-z0-9][a-z0-9_-]{0,30})/terminal/?$",
        TerminalConsumer.as_asgi(),
    ),
]
