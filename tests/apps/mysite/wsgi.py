"""WSGI entry point, instrumented with the seed's one line."""

import os

from django.core.wsgi import get_wsgi_application

from last9.wsgi.middleware import RedMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

application = RedMiddleware(get_wsgi_application(), tenant="acme", cluster="test")
