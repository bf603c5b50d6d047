"""ASGI entry point of the labmgr control plane (served by uvicorn): HTTP through Django
on long-lived threads (labmgr.http_handler) behind the body size limit, websockets
through Channels with the session's (or a token's) user and an origin check."""

import gc
import os

import django
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labmgr.settings")

# Django must be set up before the handler, the consumers and their models are imported.
django.setup(set_prefix=False)

from labmgr.http_handler import ThreadedASGIHandler  # noqa: E402

django_application = ThreadedASGIHandler(settings.LABMGR_WEB_THREADS)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from labmgr.accounts.websocket import TokenAuthMiddleware  # noqa: E402
from labmgr.middleware import BodyLimitASGI  # noqa: E402
from labmgr.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": BodyLimitASGI(django_application, settings.DATA_UPLOAD_MAX_MEMORY_SIZE),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(TokenAuthMiddleware(URLRouter(websocket_urlpatterns)))
        ),
    }
)

# What starting made (Django's apps, models, URL patterns) lives as long as the process:
# kept out of the garbage collector's sight, a full collection during a request only
# walks what the request made.
gc.freeze()
