"""WSGI support: :class:`last9.wsgi.middleware.RedMiddleware`."""

from last9.wsgi.middleware import RedMiddleware

__all__ = ["RedMiddleware"]
