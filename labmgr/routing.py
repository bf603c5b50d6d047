"""Websocket routes: the lab's live stream, the node terminals and the dashboard's stream."""

from django.urls import re_path

from labmgr.deployments.terminal import TerminalConsumer
from labmgr.labs.consumers import LabConsumer
from labmgr.web.consumers import DashboardConsumer

websocket_urlpatterns = [
    re_path(r"^ws/labs/(?P<lab>[0-9]{1,18})/?$", LabConsumer.as_asgi()),
    re_path(
        r"^ws/labs/(?P<lab>[0-9]{1,18})/nodes/(?P<node>[a-z0-9][a-z0-9_-]{0,30})/terminal/?$",
        TerminalConsumer.as_asgi(),
    ),
    re_path(r"^ws/me/?$", DashboardConsumer.as_asgi()),
]
