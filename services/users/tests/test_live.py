"""Finding 1 over a real socket, as uvicorn serves the service: the kit's `live_server`.

A demoted administrator's earlier token is refused at once, by the next request, with no restart and
no wait for it to expire.
"""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from starling_users.settings import UsersSettings

from .helpers import PASSWORD, bearer

ROOT = "root@example.com"


@pytest.fixture
def app_settings(app_settings: UsersSettings) -> UsersSettings:
    """The suite's settings with an administrator created at start-up: the live server's first admin."""
    return app_settings.model_copy(update={"admin_email": ROOT, "admin_password": SecretStr(PASSWORD)})


async def test_a_demoted_admins_token_is_refused_at_once_over_real_http(live_server: str) -> None:
    async with httpx.AsyncClient(base_url=live_server) as client:
        root = await token_of(client, ROOT)
        ada = (
            await client.post(
                "/users", json={"name": "Ada", "email": "ada@example.com", "password": PASSWORD}
            )
        ).json()
        bo = (
            await client.post("/users", json={"name": "Bo", "email": "bo@example.com", "password": PASSWORD})
        ).json()
        assert (
            await client.patch(f"/users/{ada['id']}", json={"role": "admin"}, headers=root)
        ).status_code == 200
        ada_token = await token_of(client, "ada@example.com")
        assert (await client.get("/users", headers=ada_token)).status_code == 200

        demoted = await client.patch(f"/users/{ada['id']}", json={"role": "user"}, headers=root)
        assert demoted.status_code == 200

        listed = await client.get("/users", headers=ada_token)
        back = await client.patch(f"/users/{ada['id']}", json={"role": "admin"}, headers=ada_token)
        deleted = await client.delete(f"/users/{bo['id']}", headers=ada_token)
        for refused in (listed, back, deleted):
            assert refused.status_code == 401
            assert "revoked" in refused.json()["detail"]
            assert refused.headers["www-authenticate"].startswith("Bearer")
        assert (await client.get(f"/users/{ada['id']}", headers=root)).json()["role"] == "user"
        assert (await client.get(f"/users/{bo['id']}", headers=root)).status_code == 200


async def token_of(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    response = await client.post("/auth/token", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])
