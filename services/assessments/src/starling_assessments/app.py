"""`create_app`: the assessments service on Starling's standard app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starling_assessments.repository import (
    DatabaseAssessmentStores,
    DatabaseQuestionStores,
)
from starling_assessments.routes import SCOPES, AssessmentsState, routes
from starling_assessments.schemas import USER_DELETED
from starling_assessments.service import AssessmentsService, QuestionBank
from starling_assessments.settings import AssessmentsSettings
from starling_core import app as core
from starling_core.db import Database
from starling_core.events import Consumer, Events

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(
    settings: AssessmentsSettings | None = None,
    *,
    database: Database | None = None,
    events: Events | None = None,
) -> core.ServiceApp:
    """The service; a `database` handed in is the caller's (the test kit's), else one from the settings.
    `events` relays the outbox (`assessment.completed`) to the broker the settings name, if any, and runs
    two consumer groups on `users.users`: `assessments` (`user.deleted` erases the user's assessments)
    and core's `assessments-tokens` (both events end the user's earlier tokens)."""
    settings = settings or AssessmentsSettings()
    app_events = events or Events(settings)

    @asynccontextmanager
    async def lifespan(database: Database) -> AsyncIterator[AssessmentsState]:
        stores = DatabaseAssessmentStores(database)
        assessments = AssessmentsService(stores)
        erasing = Consumer(stores, "assessments").on(USER_DELETED, assessments.forget_user)
        async with app_events.consuming(erasing):
            yield {
                "assessments": assessments,
                "bank": QuestionBank(DatabaseQuestionStores(database)),
            }

    return core.create_app(
        settings,
        routes=routes,
        scopes=SCOPES,
        lifespan=lifespan,
        migrations=MIGRATIONS,
        database=database,
        # core runs the outbox relay for as long as the app (to Kafka when one is configured; otherwise
        # events wait in the outbox) and shows the outbox in /health
        events=app_events,
        # core's consumer group `assessments-tokens`: a token the users service has since revoked is
        # refused here too (starling_core.revocations)
        refuse_revoked_tokens=True,
    )
