"""WSGI entry point as Django generates it; with `mysite.settings_middleware`, last9 is in
MIDDLEWARE instead."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings_middleware")

application = get_wsgi_application()
