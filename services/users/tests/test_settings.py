"""The users service's own settings: the role grants, read from `STARLING_USERS_ROLE_SCOPES`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from starling_users.settings import UsersSettings

from .helpers import ADMIN_SCOPES, USER_SCOPES


def test_role_scopes_default_to_the_spec() -> None:
    grants = UsersSettings().role_scopes
    assert grants == {"user": USER_SCOPES, "admin": ADMIN_SCOPES}


def test_role_scopes_are_read_as_json_from_the_environment(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text('STARLING_USERS_ROLE_SCOPES={"user": ["inventory:read"], "admin": ["users:admin"]}\n')
    settings = UsersSettings(_env_file=env)
    assert settings.role_scopes == {"user": ["inventory:read"], "admin": ["users:admin"]}


@pytest.mark.parametrize(
    ("grants", "message"),
    [
        ({"user": ["agent:read"]}, "must grant scopes to role(s) admin"),
        ({"admin": ["users:admin"]}, "must grant scopes to role(s) user"),
        ({"user": [], "admin": [], "root": ["users:admin"]}, "unknown role(s) root"),
        ({"user": ["agent:read agent:run"], "admin": []}, "role user has an empty scope or one with spaces"),
        ({"user": [""], "admin": []}, "role user has an empty scope or one with spaces"),
    ],
)
def test_role_scopes_without_both_roles_or_with_a_bad_scope_refuse_to_start(
    grants: dict[str, list[str]], message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        UsersSettings(role_scopes=grants)
