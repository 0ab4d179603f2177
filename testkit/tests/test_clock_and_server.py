"""The frozen clock moves token expiry and rate-limit windows; live_server is a real server."""

from __future__ import annotations

import pytest

from .conftest import dedent


def test_frozen_clock_expires_a_token_and_resets_the_limiter(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_clock=dedent(
            """
            async def test_token_expires_when_the_clock_moves(client, token_factory, frozen_clock):
                headers = {"Authorization": f"Bearer {token_factory(expires_in=60)}"}
                assert (await client.get("/api/me", headers=headers)).status_code == 200
                frozen_clock.tick(61)
                assert (await client.get("/api/me", headers=headers)).status_code == 401

            async def test_rate_limit_window_resets_when_the_clock_moves(auth_client, frozen_clock):
                statuses = [(await auth_client.get("/api/me")).status_code for _ in range(61)]
                assert statuses.count(200) == 60 and statuses[-1] == 429
                frozen_clock.tick(60)
                assert (await auth_client.get("/api/me")).status_code == 200
            """
        )
    )
    project.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_live_server_serves_real_http_and_is_cleaned(project: pytest.Pytester, backend: str) -> None:
    project.makepyfile(
        test_live=dedent(
            """
            import httpx

            async def test_1_write_through_a_real_server(live_server):
                assert live_server.startswith("http://127.0.0.1:")
                async with httpx.AsyncClient(base_url=live_server) as client:
                    assert (await client.post("/notes", json={"text": "real"})).status_code == 201
                    assert (await client.get("/notes")).json() == {"count": 1}

            async def test_2_tables_are_emptied_afterwards(live_server):
                async with httpx.AsyncClient(base_url=live_server) as client:
                    assert (await client.get("/notes")).json() == {"count": 0}
            """
        )
    )
    project.runpytest_subprocess("-p", "no:cacheprovider", "--db", backend).assert_outcomes(passed=2)
