"""pytest-django's `django_db` on a Django model, the peer users know; the bench's stopwatch besides."""

pytest_plugins = ["benchclock"]
