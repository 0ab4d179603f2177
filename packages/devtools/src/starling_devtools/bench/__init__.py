"""`nox -s bench`: Starling's speed, each figure a ratio against a reference measured in the same run.

Parts: `isolation` (the kit's per-test database cost, and whole processes against pytest-django),
`requests` (a request through the kit's client), `serving` (the services under wrk, one process and
two), `profile` (where a served request's time goes), `events` (outbox to handler, against aiokafka).
"""
