"""Views of the test project."""

import asyncio
import time

from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views import View

import last9


def index(request):
    return HttpResponse("home")


def hello(request, name):
    return HttpResponse(f"<p>Hello, {name}!</p>")


def item(request, item_id):
    return JsonResponse({"id": item_id})


def report(request, year):
    return JsonResponse({"year": year})


def files(request, subpath):
    return HttpResponse(subpath, content_type="text/plain")


def order(request, user_id, order_id):
    return JsonResponse({"user": str(user_id), "order": order_id})


def archive(request, year, *args):
    return HttpResponse(f"{year}")


def article(request, year, slug):
    return HttpResponse(f"{year}/{slug}")


class OnlyGet(View):
    """GET only: any other method gets Django's 405 from `http_method_not_allowed`."""

    def get(self, request, pk):
        return HttpResponse(str(pk))


def missing(request, pk):
    raise Http404("no such thing")


def boom(request):
    raise RuntimeError("boom")


def slow(request, ms):
    time.sleep(ms / 1000)
    return HttpResponse("slept")


def stream(request, chunks):
    """50 ms between chunks; an async iterator under ASGI, as Django asks there."""

    def generate():
        for i in range(chunks):
            time.sleep(0.05)
            yield f"chunk {i}\n"

    async def agenerate():
        for i in range(chunks):
            await asyncio.sleep(0.05)
            yield f"chunk {i}\n"

    under_asgi = hasattr(request, "scope")
    content = agenerate() if under_asgi else generate()
    return StreamingHttpResponse(content, content_type="text/plain")


@last9.exclude
def ping(request):
    """A probe the app leaves out of its metrics (``@last9.exclude``)."""
    return HttpResponse("pong")
