"""Django's settings for the pytest-django project: SQLite in memory (Django's own choice for a test
database on SQLite), or the bench's PostgreSQL server through psycopg 3, as the anchors measured it."""

import os
from urllib.parse import urlsplit

SECRET_KEY = "bench"
USE_TZ = True
INSTALLED_APPS = ["benchapp"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
_server = os.environ.get("STARLING_TEST_DATABASE_URL")
if _server:
    _url = urlsplit(_server.replace("+asyncpg", ""))
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "bench_django",
            "USER": _url.username or "",
            "PASSWORD": _url.password or "",
            "HOST": _url.hostname or "",
            "PORT": str(_url.port or ""),
        }
    }
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "bench.sqlite3"}}
