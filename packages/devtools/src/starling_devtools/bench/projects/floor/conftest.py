"""The floor: async tests that do nothing, without the kit's plugin; only the stopwatch."""

pytest_plugins = ["benchclock"]
