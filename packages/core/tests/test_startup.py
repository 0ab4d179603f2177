"""What importing core costs a process that builds no app: a service's conftest.py imports its
`create_app` at start-up, so every test run, a one-test run included, pays for what that import pulls in.

Each check runs in a fresh interpreter: this process has imported everything long ago.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def modules_after(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after running `statement`."""
    script = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(json.loads(completed.stdout))


@pytest.mark.parametrize(
    ("statement", "absent"),
    [
        # Alembic when migrating, PyJWT (and cryptography) when signing or verifying, the settings'
        # pydantic, the OpenAPI document and Prometheus when an app is built or served.
        (
            "import starling_core.app",
            {
                "alembic",
                "jwt",
                "cryptography",
                "pydantic",
                "pydantic_settings",
                "prometheus_client",
                "starling_core.openapi",
                "starling_core.revocations",
            },
        ),
        ("import starling_core.migrations", {"alembic"}),
        ("import starling_core.tokens", {"jwt", "cryptography", "pydantic_settings"}),
    ],
)
def test_an_import_leaves_what_it_does_not_use(statement: str, absent: set[str]) -> None:
    loaded = modules_after(statement)
    assert loaded & absent == set()


def test_building_an_app_imports_what_it_serves_with() -> None:
    loaded = modules_after(
        "from starling_core.app import create_app\n"
        "from starling_core.settings import ServiceSettings\n"
        "create_app(ServiceSettings(jwt_secret='x' * 32), routes=[])"
    )
    assert {"jwt", "starling_core.openapi", "prometheus_client", "starling_core.migrations"} <= loaded
