"""`frozen_clock`: wall-clock time that stands still until the test moves it.

time-machine moves `time.time()` and `datetime.now()`, which JWT expiry and the rate limiter's
windows read, and leaves `time.monotonic()` alone, so the event loop's own timers keep working.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine


class FrozenClock:
    """The `frozen_clock` fixture: wall-clock time that moves only when the test moves it."""

    def __init__(self, traveller: time_machine.Traveller) -> None:
        self._traveller = traveller

    def now(self) -> datetime:
        return datetime.now(UTC)

    def tick(self, seconds: float = 1.0) -> datetime:
        """Move forward by `seconds` (backwards when negative); returns the new time."""
        self._traveller.shift(timedelta(seconds=seconds))
        return self.now()

    def move_to(self, when: datetime) -> datetime:
        self._traveller.move_to(when)
        return self.now()
