"""WSGI entry point of the labmgr control plane."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labmgr.settings")

application = get_wsgi_application()
