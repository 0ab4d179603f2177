"""A tiny service built from the core, so the core and the kit are tested the way services use them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypedDict

from pydantic import BaseModel, Field
from sqlalchemy import String, func, select
from sqlalchemy.orm import Mapped, mapped_column
from starlette.requests import Request
from starlette.routing import Route

from starling_core.app import ServiceApp, create_app
from starling_core.auth import Scopes
from starling_core.db import Base, Database, new_metadata
from starling_core.errors import DomainError
from starling_core.operations import operation, route
from starling_core.repository import Repository
from starling_core.settings import ServiceSettings

ITEMS_READ = "items:read"
ITEMS_ADMIN = "items:admin"
SCOPES = Scopes(user=(ITEMS_READ,), admin=(ITEMS_ADMIN,))


class ItemSettings(ServiceSettings):
    service_name: str = "items"


class ItemBase(Base):
    __abstract__ = True
    metadata = new_metadata()  # this service's tables only


class Item(ItemBase):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class ItemRepository(Repository[Item]):
    model = Item

    async def names(self) -> list[str]:
        return list(await self.session.scalars(select(Item.name).order_by(Item.name)))


class ItemNotFound(DomainError):
    status_code = 404

    def __init__(self, name: object) -> None:
        super().__init__(f"Item {name} not found")


class ItemsState(TypedDict):
    database: Database


@asynccontextmanager
async def lifespan(database: Database) -> AsyncIterator[ItemsState]:
    yield {"database": database}


class ItemIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)


class ItemOut(BaseModel):
    id: int
    name: str


class CountOut(BaseModel):
    count: int


class ListQuery(BaseModel):
    prefix: str = ""
    limit: int = Field(10, ge=1, le=50)


@operation(body=ItemIn, response=ItemOut, status_code=201, errors=[409])
async def create_item(request: Request[ItemsState], body: ItemIn) -> ItemOut:
    """Create an item."""
    async with request.state["database"].transaction() as session:
        item = await ItemRepository(session).add(Item(name=body.name))
        return ItemOut(id=item.id, name=item.name)


@operation(query=ListQuery, response=list[str])
async def list_items(request: Request[ItemsState], query: ListQuery) -> list[str]:
    """List item names."""
    async with request.state["database"].session() as session:
        names = await ItemRepository(session).names()
    return [name for name in names if name.startswith(query.prefix)][: query.limit]


@operation(response=CountOut, scopes=[ITEMS_ADMIN])
async def count_items(request: Request[ItemsState]) -> CountOut:
    """Count items (admin only)."""
    async with request.state["database"].session() as session:
        total = await session.scalar(select(func.count()).select_from(Item))
    return CountOut(count=int(total or 0))


@operation(response=ItemOut, errors=[404])
async def get_item_by_name(request: Request[ItemsState]) -> ItemOut:
    """Read one item by its name."""
    name = request.path_params["name"]
    async with request.state["database"].session() as session:
        item = await session.scalar(select(Item).where(Item.name == name))
    if item is None:
        raise ItemNotFound(name)
    return ItemOut(id=item.id, name=item.name)


@operation(response=ItemOut, errors=[404])
async def get_item(request: Request[ItemsState]) -> ItemOut:
    """Read one item."""
    async with request.state["database"].session() as session:
        item = await ItemRepository(session).get(int(request.path_params["item_id"]))
    if item is None:
        raise ItemNotFound(request.path_params["item_id"])
    return ItemOut(id=item.id, name=item.name)


async def boom(request: Request[ItemsState]) -> None:
    raise RuntimeError("secret internals")


def build_app(
    settings: ItemSettings, *, database: Database | None = None, migrations: Path | None = None
) -> ServiceApp:
    return create_app(
        settings,
        database=database,
        migrations=migrations,
        scopes=SCOPES,
        lifespan=lifespan,
        routes=[
            route("/api/items", GET=list_items, POST=create_item),
            Route("/api/items/count", count_items, methods=["GET"]),
            Route("/api/items/{item_id:int}", get_item, methods=["GET"]),
            Route("/api/items/by-name/{name}", get_item_by_name, methods=["GET"]),
            Route("/boom", boom),
        ],
    )
