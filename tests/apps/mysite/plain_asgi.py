"""ASGI entry point as Django generates it; with `mysite.settings_middleware`, last9 is in
MIDDLEWARE instead."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings_middleware")

application = get_asgi_application()
