"""ASGI support: :class:`last9.asgi.middleware.RedMiddleware`."""

from last9.asgi.middleware import RedMiddleware

__all__ = ["RedMiddleware"]
