"""Throwaway servers started from local binaries, for the kit's fixtures and the workspace tools alike.

No pytest here: a tool that starts a PostgreSQL cluster or a broker is not a test, and installing it
should not install a test runner.
"""
