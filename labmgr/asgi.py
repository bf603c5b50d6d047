"""ASGI entry point of the labmgr control plane (served by uvicorn)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labmgr.settings")

application = get_asgi_application()
