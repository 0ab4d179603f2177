"""`nox -s soak`: the workspace's services under a bounded load, then what they acknowledged checked.

Modules by concept: `callers` (the load; a service it does not know gets the generic one from
`harness.openapi`), `ledger` (what was acknowledged), `revocation` (tokens revoked mid-run, issue
14), `memory` (each service's RSS), `verification` (what the answers, logs and databases must show
afterwards), and `__main__` (the command line and the run).
"""
