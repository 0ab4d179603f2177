"""`nox -s faults`: break things under the services and prove nothing is lost.

Four scenarios, each against real service processes (`--only` picks some):

- database: users, agents and reporting on a throwaway PostgreSQL cluster while writers keep
  registering users, queueing background runs and posting orders. The server is stopped
  (`pg_ctl stop -m fast`) and started again. Each `/health` must go 200 -> 503 -> 200; every request
  must be answered within the client's timeout, 2xx or 503 with a JSON `detail` (never a 500); every
  write answered 2xx must be in the database afterwards, and every accepted run must finish.
- agents: background runs queued on one worker, the process SIGKILLed while some are still queued or
  running, then started again on the same database: every accepted run must complete, once.
- processes: agents served by `starling_core.serve --processes 2`, running `llm` agents against a
  fake chat-completions endpoint that counts calls per input; one child is SIGKILLed mid-work and
  replaced. Every run must complete, and no input may be answered twice but those of the runs the
  killed child held (their leases run out and another process takes them).
- upstream: a fake upstream orders API that drops the connection on some requests (before answering,
  or half-way through the body) while the reporting service extracts from it on an interval. The
  extraction must resume from its checkpoint (never read the stream again from an earlier point),
  store exactly the upstream's orders and units (no double counting, nothing skipped), move the
  checkpoint to the last page, and pick up orders appended to the upstream later.

Modules: `common` (options, service environments, starting services, the log check), one per
scenario (`database`, `agents`, `processes`, `upstream`), and `__main__` (the command line and the run).
"""

from starling_devtools.faults.agents import agents_killed
from starling_devtools.faults.common import Options
from starling_devtools.faults.database import PostgresControl, database_outage, squeeze
from starling_devtools.faults.processes import FakeLLM, agents_processes
from starling_devtools.faults.upstream import (
    FakeUpstream,
    offset_of,
    serving,
    upstream_drops,
    upstream_orders,
    upstream_units,
)

__all__ = [
    "FakeLLM",
    "FakeUpstream",
    "Options",
    "PostgresControl",
    "agents_killed",
    "agents_processes",
    "database_outage",
    "offset_of",
    "serving",
    "squeeze",
    "upstream_drops",
    "upstream_orders",
    "upstream_units",
]
