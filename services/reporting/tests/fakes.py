"""The recording publisher for the extraction use case, and small builders of test data."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from starling_reporting.schemas import OrderIn, OrderItemIn

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def order(order_id: str, *items: tuple[str, str, int], created_at: datetime = T0) -> OrderIn:
    """An order of (product_id, title, quantity) items at one unit price."""
    return OrderIn(
        order_id=order_id,
        created_at=created_at,
        items=[
            OrderItemIn(product_id=product, title=title, quantity=quantity, unit_price=Decimal("9.99"))
            for product, title, quantity in items
        ],
    )


def order_json(order_id: str, *items: tuple[str, str, int], created_at: datetime = T0) -> dict[str, Any]:
    return order(order_id, *items, created_at=created_at).model_dump(mode="json")


class RecordingPublisher:
    """Stores in memory what it is given, idempotently by order id, with the checkpoint."""

    def __init__(self, checkpoint: str | None = None) -> None:
        self.stored: dict[str, OrderIn] = {}
        self.checkpoints: list[str | None] = []
        self._checkpoint = checkpoint

    async def checkpoint(self) -> str | None:
        return self._checkpoint

    async def publish(self, orders: Sequence[OrderIn], *, checkpoint: str | None) -> int:
        new = 0
        for item in orders:
            if item.order_id not in self.stored:
                self.stored[item.order_id] = item
                new += 1
        self._checkpoint = checkpoint
        self.checkpoints.append(checkpoint)
        return new
