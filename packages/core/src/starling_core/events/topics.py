"""The topics and event types of `spec/api.md` ("Events"), and their payloads: the contract between
services, kept in core because no service imports another."""

from __future__ import annotations

from decimal import Decimal

from pydantic import AwareDatetime, BaseModel, Field

from starling_core.events.envelope import EventType

ORDERS = "orders"
AGENTS_RUNS = "agents.runs"
USERS = "users.users"
ASSESSMENTS = "assessments.assessments"

DEAD_LETTER_SUFFIX = ".dlq"


def dead_letter_topic(topic: str) -> str:
    """Where a consumer puts an event of `topic` that keeps failing: `<topic>.dlq`."""
    return f"{topic}{DEAD_LETTER_SUFFIX}"


class OrderLine(BaseModel):
    product_id: str
    title: str
    quantity: int = Field(ge=1)
    unit_price: Decimal = Field(ge=0)


class OrderPlaced(BaseModel):
    """An order, as `POST /api/v1/orders` takes one (reporting validates it as it does there)."""

    order_id: str
    created_at: AwareDatetime
    items: list[OrderLine] = Field(min_length=1)


class RunFinished(BaseModel):
    run_id: str
    agent_id: str
    owner: str
    status: str
    token_usage: int | None = None
    finished_at: AwareDatetime | None = None


# The longest user id an event may name: the users service's ids are UUIDs, far shorter.
USER_ID_LENGTH = 255


class UserEvent(BaseModel):
    """`user.deleted` and `user.changed` (a role or password change, a logout): the user and the role
    it has (or had)."""

    user_id: str = Field(min_length=1, max_length=USER_ID_LENGTH)
    role: str | None = None


class AssessmentCompleted(BaseModel):
    assessment_id: str
    owner: str
    overall: float
    submitted_at: AwareDatetime


ORDER_PLACED = EventType("order.placed", ORDERS, OrderPlaced)  # key: order_id
RUN_FINISHED = EventType("run.finished", AGENTS_RUNS, RunFinished)  # key: run_id
USER_DELETED = EventType("user.deleted", USERS, UserEvent)  # key: user id
USER_CHANGED = EventType("user.changed", USERS, UserEvent)  # key: user id
ASSESSMENT_COMPLETED = EventType("assessment.completed", ASSESSMENTS, AssessmentCompleted)  # key: its id
