"""The route shapes Django projects have: converters (built-in and custom), include() prefixes
nested two deep, re_path() regexes at the root and under a path() prefix, a class-based view."""

from django.urls import include, path, re_path, register_converter
from mysite import views


class FourDigitYear:
    regex = "[0-9]{4}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return f"{value:04d}"


register_converter(FourDigitYear, "yyyy")

orders = [
    path("users/<uuid:user_id>/orders/<int:order_id>/", views.order),
    re_path(r"^archive/(?P<year>[0-9]{4})/(\d+)/$", views.archive),
]

urlpatterns = [
    path("", views.index),
    path("name/<name>/", views.hello),
    path("item/<int:item_id>", views.item),
    path("reports/<yyyy:year>/", views.report),
    path("files/<path:subpath>", views.files),
    path("api/", include([path("v1/", include(orders))])),
    re_path(r"^articles/(?P<year>[0-9]{4})/(?P<slug>[-\w]+)/$", views.article),
    path("only-get/<int:pk>/", views.OnlyGet.as_view()),
    path("missing/<int:pk>/", views.missing),
    path("boom/", views.boom),
    path("slow/<int:ms>/", views.slow),
    path("stream/<int:chunks>/", views.stream),
    path("ping/", views.ping),
]
