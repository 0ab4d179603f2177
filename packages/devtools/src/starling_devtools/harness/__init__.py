"""The one way the workspace tools run Starling's services as real processes.

`run()` (in `stack`) is the whole of it: which services exist (`discovery`: every member under
`services/`, with its `[tool.starling.serve] port`), their environment (`environment`: databases,
broker, signing secret, cheap hashing, in one place), their databases (`databases`), their processes
and readiness (`processes`), tokens (`tokens`), logs and their scans (`logs`), and teardown. A
service's OpenAPI document gives the scopes it checks and the operations of a generic load
(`openapi`). What a tool finds is recorded as answers (`answers`) and reported as checks (`report`):
a tool is then what it measures or checks, not how it starts things.
"""

from starling_devtools.harness.answers import Recorder, http_client, http_clients, percentile
from starling_devtools.harness.databases import KINDS, Databases, query
from starling_devtools.harness.discovery import discover, free_port
from starling_devtools.harness.environment import Admin, Environment
from starling_devtools.harness.openapi import Operation, declared_scopes, operations, plain_gets
from starling_devtools.harness.processes import Running, Service, StopSignals, wait_for
from starling_devtools.harness.report import Check, check, exit_code, render
from starling_devtools.harness.stack import ROOT, Stack, command_line, option, run, work_dir
from starling_devtools.harness.tokens import bearer, issued, login, register

__all__ = [
    "KINDS",
    "ROOT",
    "Admin",
    "Check",
    "Databases",
    "Environment",
    "Operation",
    "Recorder",
    "Running",
    "Service",
    "Stack",
    "StopSignals",
    "bearer",
    "check",
    "command_line",
    "declared_scopes",
    "discover",
    "exit_code",
    "free_port",
    "http_client",
    "http_clients",
    "issued",
    "login",
    "operations",
    "option",
    "percentile",
    "plain_gets",
    "query",
    "register",
    "render",
    "run",
    "wait_for",
    "work_dir",
]
