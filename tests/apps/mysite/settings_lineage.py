"""last9 in MIDDLEWARE, with the relay view of `mysite.lineage_urls`."""

from mysite.settings_middleware import *  # noqa: F403

ROOT_URLCONF = "mysite.lineage_urls"
