"""The test project's routes plus a view that calls another service while it serves (here the
project itself, at the Host it was reached by): lineage through Django's MIDDLEWARE entry."""

import httpx
from django.http import HttpResponse
from django.urls import include, path


async def relay(request, n):
    async with httpx.AsyncClient() as client:
        hello = await client.get(f"http://{request.get_host()}/name/n{n}/", timeout=10)
    return HttpResponse(f"relayed {hello.status_code}")


urlpatterns = [path("relay/<int:n>/", relay), path("", include("mysite.urls"))]
