"""One seam for every app: an app built by core, a bare Starlette app and a FastAPI app all write
through `app_database`, and nothing they commit survives the test; an app that writes around the
seam fails the test, saying how to wire it."""

from __future__ import annotations

import pytest

from .conftest import dedent

# Two apps that are not built by starling_core, written as their teams would: a Starlette app that
# takes an `async_sessionmaker`, and a FastAPI app with a session dependency. Their production wiring
# (an engine of their own) is there, and never used under the kit.
OTHER_APPS = dedent(
    """
    from collections.abc import AsyncIterator

    from fastapi import Depends, FastAPI
    from sqlalchemy import func, select
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from conftest import Note


    def create_bare_app(sessionmaker: async_sessionmaker[AsyncSession] | None = None) -> Starlette:
        sessions = sessionmaker or async_sessionmaker(create_async_engine("sqlite+aiosqlite:///prod.db"))

        async def add_note(request: Request) -> JSONResponse:
            async with sessions() as session:
                session.add(Note(text=(await request.json())["text"]))
                await session.commit()
            return JSONResponse({"ok": True}, status_code=201)

        async def count_notes(request: Request) -> JSONResponse:
            async with sessions() as session:
                total = await session.scalar(select(func.count()).select_from(Note))
            return JSONResponse({"count": total})

        return Starlette(routes=[
            Route("/notes", add_note, methods=["POST"]), Route("/notes", count_notes, methods=["GET"])
        ])


    production = async_sessionmaker(create_async_engine("sqlite+aiosqlite:///prod.db"))


    async def get_session() -> AsyncIterator[AsyncSession]:
        async with production() as session:
            yield session


    def create_fastapi_app() -> FastAPI:
        api = FastAPI()

        @api.post("/notes", status_code=201)
        async def add_note(
            body: dict[str, str], session: AsyncSession = Depends(get_session)
        ) -> dict[str, bool]:
            session.add(Note(text=body["text"]))
            await session.commit()
            return {"ok": True}

        @api.get("/notes")
        async def count_notes(session: AsyncSession = Depends(get_session)) -> dict[str, int | None]:
            return {"count": await session.scalar(select(func.count()).select_from(Note))}

        return api
    """
)

BARE_CONFTEST = dedent(
    """
    import pytest
    from other_apps import create_bare_app

    @pytest.fixture
    def app(app_database):
        return create_bare_app(app_database.sessionmaker)
    """
)

FASTAPI_CONFTEST = dedent(
    """
    import pytest
    from other_apps import create_fastapi_app, get_session

    @pytest.fixture
    def app(app_database):
        api = create_fastapi_app()
        api.dependency_overrides[get_session] = app_database.dependency
        return api
    """
)

# Each test finds the table empty, commits a row through the app, and sees it: a row left by any
# earlier test on the same worker fails the next one.
ISOLATION_TESTS = dedent(
    """
    import pytest
    from sqlalchemy import func, select
    from conftest import Note

    @pytest.mark.parametrize("n", range(6))
    async def test_commit_through_the_app_is_gone_afterwards(n, client, db_session):
        assert (await client.get("/notes")).json() == {"count": 0}
        response = await client.post("/notes", json={"text": f"note {n}"})
        assert response.status_code == 201
        assert (await client.get("/notes")).json() == {"count": 1}
        assert await db_session.scalar(select(func.count()).select_from(Note)) == 1
    """
)


def three_apps(project: pytest.Pytester) -> None:
    project.makepyfile(other_apps=OTHER_APPS)
    apps = (("core_app", None), ("bare_app", BARE_CONFTEST), ("fastapi_app", FASTAPI_CONFTEST))
    for name, conftest in apps:
        folder = project.mkpydir(name)
        if conftest:
            (folder / "conftest.py").write_text(conftest)
        (folder / f"test_{name}.py").write_text(ISOLATION_TESTS)


@pytest.mark.parametrize("workers", [0, 2], ids=["serial", "n2"])
def test_every_kind_of_app_writes_inside_the_test_transaction(
    project: pytest.Pytester, backend: str, workers: int
) -> None:
    three_apps(project)
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--db", backend, "-n", str(workers))
    result.assert_outcomes(passed=18)


BYPASS_CONFTEST = dedent(
    """
    import pytest
    import pytest_asyncio
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
    from other_apps import create_bare_app

    @pytest_asyncio.fixture(loop_scope="session")
    async def own_engine(db_url):
        engine = create_async_engine(db_url)
        yield engine
        await engine.dispose()

    @pytest.fixture
    def app(own_engine):
        # wired to an engine of its own, not to app_database: its commits are real ones
        return create_bare_app(async_sessionmaker(own_engine))
    """
)


def test_an_app_that_writes_around_the_seam_fails_saying_how_to_wire_it(
    project: pytest.Pytester, backend: str
) -> None:
    project.makepyfile(other_apps=OTHER_APPS)
    folder = project.mkpydir("bypass")
    (folder / "conftest.py").write_text(BYPASS_CONFTEST)
    (folder / "test_bypass.py").write_text(
        dedent(
            """
            from sqlalchemy import func, select
            from conftest import Note

            async def test_1_writes_around_the_seam(client):
                await client.post("/notes", json={"text": "escaped?"})

            async def test_2_nothing_was_committed(db_session):
                assert await db_session.scalar(select(func.count()).select_from(Note)) == 0
            """
        )
    )
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--db", backend)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*starling: the app under test committed outside the test's transaction*",
            "*app_database*",
        ]
    )
