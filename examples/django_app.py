"""A Django app in one file, instrumented with one line.

Run it with ``python examples/django_app.py`` (``PORT``, default 8000), or
``gunicorn --chdir examples django_app:application``; in a project made
by ``startproject``, the line goes into ``mysite/wsgi.py`` (or ``asgi.py`` with
``last9.asgi.middleware.RedMiddleware``), or ``"last9.django.RedMiddleware"`` goes first in
``MIDDLEWARE`` instead.
"""

import os
import time
from wsgiref.simple_server import make_server

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpResponse
from django.urls import path

from last9.wsgi.middleware import RedMiddleware

settings.configure(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"], SECRET_KEY="example-only")


def hello_world(request, name):
    time.sleep(1)
    return HttpResponse(f"<p>Hello, {name}!</p>")


def hello_static(request):
    return HttpResponse("<p>Static</p>")


urlpatterns = [path("name/<name>", hello_world), path("static", hello_static)]

# Only line that needs to be changed
application = RedMiddleware(get_wsgi_application(), program="django_app")

if __name__ == "__main__":
    make_server("127.0.0.1", int(os.environ.get("PORT", "8000")), application).serve_forever()
