"""A demo question bank: four questions in each of five skill areas, so a fresh service can be used at once.

Written out here rather than imported: the history stays as it ran, whatever the models become. Downgrading
removes these questions except those an assessment holds.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SEEDED_AT = datetime(2026, 1, 1, tzinfo=UTC)

questions = sa.table(
    "questions",
    sa.column("id", sa.String),
    sa.column("skill_area", sa.String),
    sa.column("text", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("retired_at", sa.DateTime(timezone=True)),
)
assessment_questions = sa.table("assessment_questions", sa.column("question_id", sa.String))

# (id, skill area, text); the ids are uuid5 values, fixed so that downgrade finds exactly these rows.
BANK = [
    (
        "4e378ca7-9647-5e57-ad05-314e497cffce",
        "python",
        "I write idiomatic Python: comprehensions, context managers and generators where they fit.",
    ),
    (
        "735aa781-df68-5d74-be06-f5654dbbea77",
        "python",
        "I type-annotate my code and keep mypy --strict passing.",
    ),
    (
        "fc8c97db-9e05-5aa1-8274-b1a19f6b01b1",
        "python",
        "I write async code with asyncio without blocking the event loop.",
    ),
    (
        "be3bb6b9-9108-5c26-b829-e310560b2ed4",
        "python",
        "I package and version a Python library with pyproject.toml.",
    ),
    (
        "2a5a2e6b-9e69-5168-88e9-b549fa73ac6e",
        "sql",
        "I write joins and aggregations (GROUP BY, HAVING) without looking them up.",
    ),
    (
        "90ddbf01-1960-5b17-8cea-c5d16d34952c",
        "sql",
        "I read a query plan and choose the index that makes a query fast.",
    ),
    (
        "66a4c0a1-e1c9-5cc2-85fb-d26d06560b09",
        "sql",
        "I know what each transaction isolation level allows and pick the one a change needs.",
    ),
    (
        "f55be076-e846-534a-a181-74b8f46c948b",
        "sql",
        "I write schema migrations that run on a live database without downtime.",
    ),
    (
        "25e0c7b4-c3e1-55fe-b3b7-219f9a281a1e",
        "testing",
        "I write tests that read as a specification of the behaviour.",
    ),
    (
        "25003c4d-649a-537e-a86d-194ef76c285c",
        "testing",
        "I isolate a test from the network and the clock with fakes passed in, not patches.",
    ),
    (
        "da051c58-8881-5c15-aa4f-bba46cb80986",
        "testing",
        "I test against a real database, with every test rolled back.",
    ),
    (
        "a58273f0-e48d-52aa-ad06-d59713779b33",
        "testing",
        "I find and fix a flaky test rather than retrying it.",
    ),
    (
        "8f76b4ab-6c32-5c10-a121-f90a809a13a0",
        "system-design",
        "I design an HTTP API: resources, status codes, pagination and errors.",
    ),
    (
        "0c43b63a-d395-5cea-9a94-3c3de97b763a",
        "system-design",
        "I decide what must be consistent in one transaction and what may be eventually consistent.",
    ),
    ("fc53543e-5db5-5812-9ce9-6b5e1fae967d", "system-design", "I make a consumer of events idempotent."),
    (
        "b09a5728-f200-5106-9afd-39e35f7bd692",
        "system-design",
        "I plan for a dependency being slow or down: timeouts, retries with backoff, fallbacks.",
    ),
    (
        "18f78729-ad31-5a5c-8779-702e7b06eab6",
        "communication",
        "I write a design document that others can review and decide on.",
    ),
    (
        "f15caca3-e020-5c0f-9f98-e2ca1d16f525",
        "communication",
        "I give code review feedback that is specific and kind.",
    ),
    (
        "2bc6a7a9-eeb7-5936-b5e2-9883a2a3b7f4",
        "communication",
        "I explain a technical trade-off to someone who is not an engineer.",
    ),
    (
        "21ed45b8-4344-5bac-b790-1720fb5026df",
        "communication",
        "I say early when a piece of work will be late, and why.",
    ),
]


def upgrade() -> None:
    # A downgrade keeps the questions that assessments hold: upgrading again adds only the others.
    ids = [ident for ident, _, _ in BANK]
    kept = set(op.get_bind().scalars(sa.select(questions.c.id).where(questions.c.id.in_(ids))))
    rows = [
        # one microsecond apart: the bank lists them in this order
        {"id": ident, "skill_area": area, "text": text, "created_at": SEEDED_AT.replace(microsecond=n)}
        for n, (ident, area, text) in enumerate(BANK)
        if ident not in kept
    ]
    if rows:
        op.bulk_insert(questions, rows)


def downgrade() -> None:
    held = sa.select(assessment_questions.c.question_id)
    op.execute(
        questions.delete().where(
            questions.c.id.in_([ident for ident, _, _ in BANK]), questions.c.id.not_in(held)
        )
    )
