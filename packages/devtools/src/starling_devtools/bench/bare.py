"""The bare references of `serving`: each service's measured paths as a minimal Starlette app.

Each app does what its service's route does to the database, on the same database, through the same
tables (the services' own models), the same driver and a plain SQLAlchemy async engine, and answers
the same JSON, with none of Starling's stack: no request id, body limit, token, rate limit, operation,
validation beyond `json.loads`, service layer or JSON error handling. What a service costs over its
bare app is what the stack costs. Served by the same server as the service; each app is built when
the server starts it, from `BENCH_BARE_DATABASE_URL`:

    BENCH_BARE_DATABASE_URL=sqlite+aiosqlite:///users.db \
        python -m starling_core.serve starling_devtools.bench.bare:users --port 19200

- users: `GET /users/{id}` reads the user by primary key (the service reads the token's subject);
  `POST /users` hashes the password with Argon2id (argon2-cffi's defaults, the service's too) in a
  thread and inserts the row, 409 on a taken address;
- agents: `GET /api/v1/agents` reads every agent by id; `POST /api/v1/agents/run` reads the agent,
  inserts the run, summarises the text (the service's own summariser: domain work, not stack) and
  stores the outcome, in two transactions as the service does;
- reporting: `GET /top-products` runs the same aggregate; `POST /api/v1/orders` inserts the orders that
  are new and their items, in one transaction.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

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


def users_app() -> Starlette:
    from argon2 import PasswordHasher

    from starling_users.models import User

    engine = _engine()
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    hasher = PasswordHasher()

    def out(user: User) -> dict[str, Any]:
        return {
            "id": user.id,
            "name": user.name,
            "email": user.email,
            "role": user.role,
            "created_at": user.created_at.isoformat(),
        }

    async def read(request: Request) -> JSONResponse:
        async with sessions() as session:
            user = await session.get(User, request.path_params["user_id"])
        if user is None:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return JSONResponse(out(user))

    async def register(request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        password_hash = await run_in_threadpool(hasher.hash, body["password"])
        user = User(
            id=str(uuid.uuid4()),
            name=body["name"],
            email=body["email"],
            email_normalized=body["email"].lower(),
            password_hash=password_hash,
            role="user",
            created_at=_now(),
            token_version=0,
        )
        try:
            async with sessions() as session, session.begin():
                session.add(user)
        except IntegrityError:
            return JSONResponse({"detail": "taken"}, status_code=409)
        return JSONResponse(out(user), status_code=201)

    routes = [Route("/users/{user_id}", read), Route("/users", register, methods=["POST"])]
    return _app(routes, engine)


def agents_app() -> Starlette:
    from starling_agents.models import Agent, Run
    from starling_agents.runners import run_summarizer

    engine = _engine()
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def listing(request: Request) -> JSONResponse:
        async with sessions() as session:
            found = (await session.scalars(select(Agent).order_by(Agent.agent_id))).all()
        return JSONResponse(
            [
                {"agent_id": a.agent_id, "name": a.name, "description": a.description, "kind": a.kind}
                for a in found
            ]
        )

    async def run(request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        async with sessions() as session:
            agent = await session.get(Agent, body["agent_id"])
        if agent is None:
            return JSONResponse({"detail": "not found"}, status_code=404)
        now = _now()
        started = Run(
            run_id=str(uuid.uuid4()), agent_id=agent.agent_id, owner="bench", status="running",
            input_text=body["input_text"], token_usage=0, created_at=now, started_at=now,
        )  # fmt: skip
        async with sessions() as session, session.begin():
            session.add(started)
        outcome = run_summarizer(body["input_text"], int(agent.config.get("max_sentences", 3)))
        async with sessions() as session, session.begin():
            await session.execute(
                update(Run)
                .where(Run.run_id == started.run_id)
                .values(status="completed", output=outcome.output, token_usage=outcome.token_usage,
                        finished_at=_now())
            )  # fmt: skip
            finished = await session.get(Run, started.run_id)
        assert finished is not None
        return JSONResponse(
            {
                "run_id": finished.run_id,
                "agent_id": finished.agent_id,
                "status": finished.status,
                "output": finished.output,
                "token_usage": finished.token_usage,
                "error": None,
                "created_at": finished.created_at.isoformat(),
                "finished_at": finished.finished_at.isoformat() if finished.finished_at else None,
            }
        )

    routes = [Route("/api/v1/agents", listing), Route("/api/v1/agents/run", run, methods=["POST"])]
    return _app(routes, engine)


def reporting_app() -> Starlette:
    from starling_reporting.models import Order, OrderItem

    engine = _engine()
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    insert: Callable[..., Any]
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert

    async def top_products(request: Request) -> JSONResponse:
        count = int(request.query_params.get("count", "10"))
        bought = func.sum(OrderItem.quantity).label("cnt_bought")
        title = func.min(OrderItem.title).label("title")
        statement = (
            select(OrderItem.product_id, title, bought)
            .join(Order, Order.order_id == OrderItem.order_id)
            .group_by(OrderItem.product_id)
            .order_by(bought.desc(), title, OrderItem.product_id)
            .limit(count)
        )
        async with sessions() as session:
            rows = (await session.execute(statement)).all()
        return JSONResponse(
            [
                {"rank": rank, "product_id": product, "title": name, "cnt_bought": int(units)}
                for rank, (product, name, units) in enumerate(rows, start=1)
            ]
        )

    async def ingest(request: Request) -> JSONResponse:
        orders = json.loads(await request.body())["orders"]
        async with sessions() as session, session.begin():
            new = set(
                (
                    await session.scalars(
                        insert(Order)
                        .values([{"order_id": o["order_id"],
                                  "created_at": datetime.fromisoformat(o["created_at"])} for o in orders])
                        .on_conflict_do_nothing(index_elements=[Order.order_id])
                        .returning(Order.order_id)
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
                await session.execute(insert(OrderItem), items)
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
