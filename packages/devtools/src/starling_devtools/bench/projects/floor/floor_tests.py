"""A test that does nothing: what pytest itself costs per async test."""

from __future__ import annotations

from benchsizes import numbered


async def _does_nothing() -> None:
    pass


globals().update(numbered(__name__, _does_nothing))
