"""The bare references of `serving`: each service's measured paths as a minimal Starlette app.

Each app does what its service's route does to the database, on the same database, rows and driver
with a plain SQLAlchemy async engine and SQLAlchemy Core, and answers the same JSON, with none of
Starling's stack: no request id, body limit, token, rate limit, operation, validation beyond
`json.loads`, service layer or JSON error handling. What a service costs over its
bare app is what the stack costs. Served by the same server as the service; each app is built when
the server starts it, from `BENCH_BARE_DATABASE_URL`:

    BENCH_BARE_DATABASE_URL=sqlite+aiosqlite:///users.db \
        python -m starling_core.serve starling_devtools.bench.bare:users --port 19200

- users: `GET /users/{id}` reads the user by primary key (the service reads the token's subject);
  `POST /users` hashes the password with Argon2id (argon2-cffi's defaults, the service's too) in a
  thread and inserts the row, 409 on a taken address;
- agents: `GET /api/v1/agents` reads every agent by id; `POST /api/v1/agents/run` reads the agent,
  inserts the run, summarises the text (the service's extractive algorithm, copied: domain work, not
  stack) and stores the outcome, in two transactions as the service does;
- reporting: `GET /top-products` runs the same aggregate; `POST /api/v1/orders` inserts the orders that
  are new and their items, in one transaction.

The tables are declared here with the columns these paths touch, as the services' migrations make
them: a tool never imports a service (`nox -s lint` holds that), it only shares the database.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from starling_core.db import UTCDateTime

DATABASE_VARIABLE = "BENCH_BARE_DATABASE_URL"


def _app(routes: list[Route], engine: AsyncEngine) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "healthy"})

    return Starlette(routes=[Route("/health", health), *routes], lifespan=lifespan)


def _engine() -> AsyncEngine:
    return create_async_engine(os.environ[DATABASE_VARIABLE])


def _now() -> datetime:
    return datetime.now(UTC)


_metadata = MetaData()


def _table(name: str, /, **columns: Any) -> Table:
    """A table with the columns the measured paths touch, the first its primary key."""
    key, *others = columns.items()
    return Table(name, _metadata, Column(*key, primary_key=True), *(Column(*column) for column in others))


_users = _table(
    "users", id=String, name=String, email=String, email_normalized=String, password_hash=String, role=String,
    created_at=UTCDateTime(), token_version=Integer,
)  # fmt: skip
_agents = _table("agents", agent_id=String, name=String, description=String, kind=String, config=JSON)
_runs = _table(
    "runs", run_id=String, agent_id=String, owner=String, status=String, input_text=Text, output=Text,
    token_usage=Integer, error=Text, created_at=UTCDateTime(), started_at=UTCDateTime(),
    finished_at=UTCDateTime(), lease_expires_at=UTCDateTime(), lease_holder=String,
)  # fmt: skip
_orders = _table("orders", order_id=String, created_at=DateTime(timezone=True))
_order_items = _table(
    "order_items", id=Integer, order_id=String, product_id=String, title=String, quantity=Integer,
    unit_price_cents=BigInteger,
)  # fmt: skip


def _json(row: Any, *names: str) -> dict[str, Any]:
    """The named fields of a row, datetimes in ISO 8601."""
    values = {name: getattr(row, name) for name in names}
    return {
        name: value.isoformat() if isinstance(value, datetime) else value for name, value in values.items()
    }


def users_app() -> Starlette:
    from argon2 import PasswordHasher

    engine = _engine()
    hasher = PasswordHasher()
    fields = ("id", "name", "email", "role", "created_at")

    async def read(request: Request) -> JSONResponse:
        async with engine.connect() as connection:
            found = (
                await connection.execute(select(_users).where(_users.c.id == request.path_params["user_id"]))
            ).first()
        if found is None:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return JSONResponse(_json(found, *fields))

    async def register(request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        password_hash = await run_in_threadpool(hasher.hash, body["password"])
        user = {
            "id": str(uuid.uuid4()), "name": body["name"], "email": body["email"],
            "email_normalized": body["email"].lower(), "password_hash": password_hash, "role": "user",
            "created_at": _now(), "token_version": 0,
        }  # fmt: skip
        try:
            async with engine.begin() as connection:
                await connection.execute(insert(_users).values(**user))
        except IntegrityError:
            return JSONResponse({"detail": "taken"}, status_code=409)
        return JSONResponse(_json(SimpleNamespace(**user), *fields), status_code=201)

    routes = [Route("/users/{user_id}", read), Route("/users", register, methods=["POST"])]
    return _app(routes, engine)


# The agents service's summariser (starling_agents.runners), copied: the same work per run.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
_STOP_TEXT = (
    "a about above after again against all am an and any are as at be because been before being below "
    "between both but by can could did do does doing down during each few for from further had has have "
    "having he her here hers herself him himself his how i if in into is it its itself just me more most "
    "my myself no nor not now of off on once only or other our ours ourselves out over own same she "
    "should so some such than that the their theirs them themselves then there these they this those "
    "through to too under until up very was we were what when where which while who whom why will with "
    "would you your yours yourself yourselves"
)
_STOP_WORDS = frozenset(_STOP_TEXT.split())


def summarize(text: str, max_sentences: int) -> str:
    sentences = [" ".join(part.split()) for part in _SENTENCE_END.split(text.strip()) if part.strip()]
    if len(sentences) <= max_sentences:
        return " ".join(sentences)

    def words(text: str) -> list[str]:
        return [word for word in _WORD.findall(text.lower()) if word not in _STOP_WORDS]

    frequencies = Counter(words(text))
    top = max(frequencies.values(), default=1)

    def score(index: int) -> tuple[float, int]:
        found = words(sentences[index])
        return (-sum(frequencies[word] / top for word in found) / max(1.0, len(found) ** 0.5), index)

    kept = sorted(sorted(range(len(sentences)), key=score)[:max_sentences])
    return " ".join(sentences[index] for index in kept)


def agents_app() -> Starlette:
    engine = _engine()

    async def listing(request: Request) -> JSONResponse:
        statement = select(_agents.c.agent_id, _agents.c.name, _agents.c.description, _agents.c.kind)
        async with engine.connect() as connection:
            found = (await connection.execute(statement.order_by(_agents.c.agent_id))).all()
        return JSONResponse([dict(row._mapping) for row in found])

    async def run(request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        async with engine.connect() as connection:
            agent = (
                await connection.execute(select(_agents).where(_agents.c.agent_id == body["agent_id"]))
            ).first()
        if agent is None:
            return JSONResponse({"detail": "not found"}, status_code=404)
        now = _now()
        run_id = str(uuid.uuid4())
        async with engine.begin() as connection:
            await connection.execute(
                insert(_runs).values(
                    run_id=run_id, agent_id=agent.agent_id, owner="bench", status="running",
                    input_text=body["input_text"], token_usage=0, created_at=now, started_at=now,
                )
            )  # fmt: skip
        text = body["input_text"]
        output = summarize(text, int(agent.config.get("max_sentences", 3)))
        usage = len(text.split()) + len(output.split())
        async with engine.begin() as connection:
            await connection.execute(
                update(_runs).where(_runs.c.run_id == run_id)
                .values(status="completed", output=output, token_usage=usage, finished_at=_now())
            )  # fmt: skip
            finished = (await connection.execute(select(_runs).where(_runs.c.run_id == run_id))).one()
        fields = (
            "run_id",
            "agent_id",
            "status",
            "output",
            "token_usage",
            "error",
            "created_at",
            "finished_at",
        )
        return JSONResponse(_json(finished, *fields))

    routes = [Route("/api/v1/agents", listing), Route("/api/v1/agents/run", run, methods=["POST"])]
    return _app(routes, engine)


def reporting_app() -> Starlette:
    engine = _engine()
    upsert: Callable[..., Any]
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert

    async def top_products(request: Request) -> JSONResponse:
        count = int(request.query_params.get("count", "10"))
        bought = func.sum(_order_items.c.quantity).label("cnt_bought")
        title = func.min(_order_items.c.title).label("title")
        statement = (
            select(_order_items.c.product_id, title, bought)
            .join(_orders, _orders.c.order_id == _order_items.c.order_id)
            .group_by(_order_items.c.product_id)
            .order_by(bought.desc(), title, _order_items.c.product_id)
            .limit(count)
        )
        async with engine.connect() as connection:
            rows = (await connection.execute(statement)).all()
        return JSONResponse(
            [
                {"rank": rank, "product_id": product, "title": name, "cnt_bought": int(units)}
                for rank, (product, name, units) in enumerate(rows, start=1)
            ]
        )

    async def ingest(request: Request) -> JSONResponse:
        orders = json.loads(await request.body())["orders"]
        async with engine.begin() as connection:
            new = set(
                (
                    await connection.scalars(
                        upsert(_orders)
                        .values([{"order_id": o["order_id"],
                                  "created_at": datetime.fromisoformat(o["created_at"])} for o in orders])
                        .on_conflict_do_nothing(index_elements=[_orders.c.order_id])
                        .returning(_orders.c.order_id)
                    )
                ).all()
            )  # fmt: skip
            items = [
                {
                    "order_id": order["order_id"],
                    "product_id": item["product_id"],
                    "title": item["title"],
                    "quantity": item["quantity"],
                    "unit_price_cents": int(item["unit_price"] * 100),
                }
                for order in orders
                if order["order_id"] in new
                for item in order["items"]
            ]
            if items:
                await connection.execute(insert(_order_items), items)
        accepted = len(new)
        return JSONResponse({"accepted": accepted, "duplicates": len(orders) - accepted}, status_code=202)

    routes = [Route("/top-products", top_products), Route("/api/v1/orders", ingest, methods=["POST"])]
    return _app(routes, engine)


class _Built:
    """An ASGI app built on its first call (the server's lifespan start-up), so that any server serves
    it as `module:attribute` and importing this module reads no environment."""

    def __init__(self, build: Callable[[], Starlette]) -> None:
        self.build = build
        self.app: Starlette | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            self.app = self.build()
        await self.app(scope, receive, send)


users = _Built(users_app)
agents = _Built(agents_app)
reporting = _Built(reporting_app)
