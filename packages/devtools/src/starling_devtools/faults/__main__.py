"""`python -m starling_devtools.faults`: break things under the services and prove nothing is lost.

    nox -s faults                                  # database, agents, processes, upstream and broker
    nox -s faults -- --only agents                 # one scenario (repeatable)
    python -m starling_devtools.faults --keep      # keep the databases and logs to read afterwards

What each scenario breaks and checks: the package's docstring (`starling_devtools.faults`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from starling_devtools import harness
from starling_devtools.faults.agents import agents_killed, agents_processes
from starling_devtools.faults.broker import broker_outage
from starling_devtools.faults.common import Options
from starling_devtools.faults.database import database_outage
from starling_devtools.faults.upstream import upstream_drops

SCENARIOS = {
    "database": database_outage,
    "agents": agents_killed,
    "processes": agents_processes,
    "upstream": upstream_drops,
    "broker": broker_outage,
}


def run(options: Options) -> int:
    checks: list[harness.Check] = []
    reports = []
    with harness.work_dir("starling-faults-", keep=options.keep) as directory:
        for name in options.only:
            scenario_dir = directory / name
            scenario_dir.mkdir()
            try:
                found = asyncio.run(SCENARIOS[name](options, scenario_dir))
            except Exception as exc:  # a scenario that cannot run is a failed check, not a traceback
                found = [harness.check(f"{name} scenario ran", False, f"{type(exc).__name__}: {exc}")]
            checks += found
            reports.append(harness.render(f"faults: {name}", found))
    print("\n".join(reports))
    print(f"{sum(c.ok for c in checks)}/{len(checks)} checks passed in all")
    return harness.exit_code(checks)


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = harness.command_line("faults", __doc__.splitlines()[0], Options)
    parser.add_argument(
        "--only", action="append", choices=list(SCENARIOS), help="this scenario (repeatable; default all)"
    )
    args = vars(parser.parse_args(argv))
    return Options(**args | {"only": tuple(args["only"] or SCENARIOS)})


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
