"""ASGI entry point of the labmgr control plane (served by uvicorn): HTTP through Django
behind the body size limit, websockets through Channels with the session's user and an
origin check."""

import gc
import os

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labmgr.settings")

# Django must be set up before the consumers (and their models) are imported.
django_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from labmgr.middleware import BodyLimitASGI  # noqa: E402
from labmgr.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": BodyLimitASGI(django_application, settings.DATA_UPLOAD_MAX_MEMORY_SIZE),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)

# What starting made (Django's apps, models, URL patterns) lives as long as the process:
# kept out of the garbage collector's sight, a full collection during a request only
# walks what the request made.
gc.freeze()
