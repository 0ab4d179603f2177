"""The Alembic history, with core's beside it, builds exactly the tables the models and core describe, and
seeds the demo question bank (`0002`), which a downgrade takes out again."""

from __future__ import annotations

from pathlib import Path

import httpx
from alembic import command
from asgi_lifespan import LifespanManager
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from starling_assessments.app import MIGRATIONS, create_app
from starling_assessments.models import AssessmentsBase
from starling_assessments.repository import DatabaseAssessmentStores, DatabaseQuestionStores
from starling_assessments.schemas import AssessmentCreate
from starling_assessments.service import Actor, AssessmentsService, QuestionBank
from starling_assessments.settings import AssessmentsSettings
from starling_core import schema
from starling_core.db import Database
from starling_core.migrations import alembic_config, differences, upgrade
from starling_core.tokens import JWTConfig
from starling_testkit.tokens import make_token_factory

TABLES = {"alembic_version", *AssessmentsBase.metadata.tables, *schema.metadata.tables}
SEEDED = [("communication", 4), ("python", 4), ("sql", 4), ("system-design", 4), ("testing", 4)]


async def tables_and_differences(database: Database) -> tuple[set[str], list[object]]:
    async with database.engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    return tables, await differences(database, AssessmentsBase.metadata)


async def test_upgrade_from_empty_matches_the_models_and_cores_tables(tmp_path: Path) -> None:
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/assessments.db")
    try:
        await upgrade(database, MIGRATIONS)
        await upgrade(database, MIGRATIONS)  # a second upgrade finds nothing to do
        tables, diff = await tables_and_differences(database)
    finally:
        await database.dispose()

    assert tables == TABLES
    assert diff == []


async def downgrade(database: Database, revision: str) -> None:
    config = alembic_config(MIGRATIONS, database.engine.url.render_as_string(hide_password=False))

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    async with database.engine.begin() as connection:
        await connection.run_sync(run)


async def test_the_history_seeds_a_demo_question_bank(tmp_path: Path) -> None:
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/assessments.db")
    try:
        await upgrade(database, MIGRATIONS)
        seeded = await QuestionBank(DatabaseQuestionStores(database)).skill_areas()
        questions, _ = await QuestionBank(DatabaseQuestionStores(database)).list_page(limit=200)
    finally:
        await database.dispose()

    assert seeded == SEEDED
    assert [q.skill_area for q in questions[:4]] == ["python"] * 4  # in the order written down


async def test_downgrading_the_seed_keeps_only_questions_an_assessment_holds(tmp_path: Path) -> None:
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/assessments.db")
    try:
        await upgrade(database, MIGRATIONS)
        await AssessmentsService(DatabaseAssessmentStores(database)).create(
            Actor("user-1"), AssessmentCreate(title="Before the downgrade", skill_areas=["sql"])
        )
        await downgrade(database, "0001")
        left = await QuestionBank(DatabaseQuestionStores(database)).skill_areas()
        await upgrade(database, MIGRATIONS)  # and back up: the held questions are not added twice
        again = await QuestionBank(DatabaseQuestionStores(database)).skill_areas()
    finally:
        await database.dispose()

    assert left == [("sql", 4)]
    assert again == SEEDED


async def test_the_app_migrates_a_database_of_its_own_at_start_up(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/assessments.db"
    settings = AssessmentsSettings(database_url=url)
    # Not the kit's app: this one owns its database, so its token is made for its own settings.
    token = make_token_factory(JWTConfig.from_settings(settings))(scopes=["assessments:read"])
    headers = {"Authorization": f"Bearer {token}"}
    # The lifespan's state reaches requests through the started app, `manager.app`.
    async with (
        LifespanManager(create_app(settings)) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://test") as client,
    ):
        assert (await client.get("/health")).status_code == 200
        areas = (await client.get("/api/v1/skill-areas", headers=headers)).json()
    assert [(area["skill_area"], area["questions"]) for area in areas] == SEEDED

    database = Database.from_url(url)
    try:
        tables, diff = await tables_and_differences(database)
    finally:
        await database.dispose()
    assert tables == TABLES
    assert diff == []
