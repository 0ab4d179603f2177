"""`nox -s bench`: Starling's speed, each figure a ratio against a reference measured in the same run.

Parts: `isolation` (the kit's per-test database cost), `requests` (a request through the kit's client),
`serving` (the services under wrk, one process and two), `readme` (the README's test command, opt-in).
"""
