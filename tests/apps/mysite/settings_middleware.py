"""The same project instrumented the Django way: last9's entry first in MIDDLEWARE."""

from mysite.settings import *  # noqa: F403
from mysite.settings import MIDDLEWARE

MIDDLEWARE = ["last9.django.RedMiddleware", *MIDDLEWARE]
LAST9 = {"tenant": "acme", "cluster": "test"}
