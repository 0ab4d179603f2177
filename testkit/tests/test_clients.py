"""The clients run the lifespan and carry the tokens the app under test accepts."""

from __future__ import annotations

import pytest

from .conftest import dedent

CLIENT_TESTS = dedent(
    """
    async def test_anonymous_client_gets_401(client):
        response = await client.get("/api/me")
        assert response.status_code == 401
        assert "Authorization" in response.json()["detail"]

    async def test_auth_client_holds_the_scopes_the_app_gives_a_user(auth_client):
        response = await auth_client.get("/api/me")
        assert response.status_code == 200
        assert response.json() == {"sub": "test-user-001", "scopes": ["notes:read"]}

    async def test_admin_client_holds_every_scope_the_app_declares(admin_client):
        response = await admin_client.get("/api/me")
        assert response.json() == {"sub": "test-admin-001", "scopes": ["notes:admin", "notes:read"]}

    async def test_clients_share_one_lifespan(client, auth_client, app_database):
        from starling_testkit import BoundDatabase

        assert str(client.base_url) == "http://testserver"
        assert isinstance(app_database, BoundDatabase)

    async def test_token_factory_scopes_and_subject(client, token_factory):
        token = token_factory(sub="someone", scopes=["notes:read"])
        response = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert response.json() == {"sub": "someone", "scopes": ["notes:read"]}

    async def test_token_without_scope_gets_403(client, token_factory):
        token = token_factory(scopes=["reports:read"])
        response = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 403
        assert "notes:read" in response.json()["detail"]

    async def test_expired_token_gets_401(client, token_factory):
        token = token_factory(expires_in=-60)
        response = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401

    async def test_wrongly_signed_token_gets_401(client, token_factory):
        token = token_factory(secret="another-secret-that-is-long-enough-000")
        response = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
    """
)


def test_client_fixtures_and_tokens(project: pytest.Pytester, backend: str) -> None:
    project.makepyfile(test_clients=CLIENT_TESTS)
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--db", backend)
    result.assert_outcomes(passed=8)


def test_async_tests_run_on_the_session_loop(project: pytest.Pytester, backend: str) -> None:
    project.makepyfile(
        test_loops=dedent(
            """
            import asyncio

            LOOPS = []

            async def test_first(db_engine):
                LOOPS.append(asyncio.get_running_loop())

            async def test_second(db_session):
                LOOPS.append(asyncio.get_running_loop())
                assert LOOPS[0] is LOOPS[1]
            """
        )
    )
    project.runpytest_subprocess("-p", "no:cacheprovider", "--db", backend).assert_outcomes(passed=2)


def test_a_suite_overrides_the_scopes_its_clients_hold(project: pytest.Pytester) -> None:
    project.makeconftest(
        project.path.joinpath("conftest.py").read_text()
        + "\n\n"
        + dedent(
            """

            @pytest.fixture
            def user_scopes():
                return ("notes:read", "notes:extra")
            """
        )
    )
    project.makepyfile(
        test_override=dedent(
            """
            async def test_auth_client(auth_client):
                response = await auth_client.get("/api/me")
                assert response.json()["scopes"] == ["notes:extra", "notes:read"]
            """
        )
    )
    project.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
