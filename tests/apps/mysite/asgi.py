"""ASGI entry point, instrumented with the seed's one line."""

import os

from django.core.asgi import get_asgi_application

from last9.asgi.middleware import RedMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

application = RedMiddleware(get_asgi_application(), tenant="acme", cluster="test")
