"""The kit's test on pytest-django: insert a row, count exactly one. Synchronous, as Django's tests are."""

from __future__ import annotations

import pytest
from benchapp.models import Row
from benchsizes import numbered


@pytest.mark.django_db
def _sees_only_its_own_row() -> None:
    Row.objects.create(name="r")
    assert Row.objects.count() == 1


globals().update(numbered(__name__, _sees_only_its_own_row))
