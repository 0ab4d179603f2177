"""`nox -s faults`: break things under the services and prove nothing is lost.

Five scenarios, each against real service processes (`--only` picks some):

- database: every service on a throwaway PostgreSQL cluster while writers keep registering users,
  queueing background runs and posting orders (and a generic reader reads every other service). The
  server is stopped (`pg_ctl stop -m fast`) and started again. Each `/health` must go 200 -> 503 ->
  200; every request must be answered within the client's timeout, 2xx or 503 with a JSON `detail`
  (never a 500); every write answered 2xx must be in the database afterwards, and every accepted run
  must finish.
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
- broker: reporting consuming `orders` from a Kafka-protocol broker (the kit's, from the pinned wheel)
  while a shop in this process places orders through core's outbox and relay, every fifth also posted
  over HTTP. Clients reach the broker through a proxy it advertises; a third of the way in, the proxy
  cuts every connection and refuses new ones for `--outage` seconds, then listens again: a broker
  stopped and started with its log and offsets kept. Every published order must be stored exactly
  once, units per product must equal the published ones in the database and in `/top-products`, and
  every event must be handled once, any copy skipped by the inbox.

Every scenario runs its services on the harness (`starling_devtools.harness`), on free ports. Modules:
`common` (options, the scopes of the scenarios' tokens), `database`, `agents` (the agents and
processes scenarios), `upstream`, `broker`, and `__main__` (the command line and the run).
"""
