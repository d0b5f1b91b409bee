"""A one-file Django project whose views set a request label, instrumented the Django way
(``last9.django.RedMiddleware`` in MIDDLEWARE, ``request_labels`` in ``LAST9``): ``wsgi`` for
gunicorn, ``asgi`` for uvicorn."""

from django.conf import settings

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="labels-test",
    MIDDLEWARE=["last9.django.RedMiddleware"],
    LAST9={"request_labels": {"tier": ["free", "gold"]}},
)

from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

import last9  # noqa: E402


def order(request: HttpRequest, item: str) -> HttpResponse:
    if "tier" in request.GET:
        last9.set_label("tier", request.GET["tier"])
    return HttpResponse(f"ordered {item}")


async def order_async(request: HttpRequest, item: str) -> HttpResponse:
    if "tier" in request.GET:
        last9.set_label("tier", request.GET["tier"])
    return HttpResponse(f"ordered {item}")


urlpatterns = [path("order/<item>", order), path("async/<item>", order_async)]

wsgi = get_wsgi_application()
asgi = get_asgi_application()
