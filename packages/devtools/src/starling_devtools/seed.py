"""Demo data for the developer loop, written through the services' own APIs over real HTTP.

Seeding goes through the front door on purpose: it exercises the same validation, auth and idempotency
a client meets, and it needs no knowledge of any service's tables. Running it again changes nothing:
agents that exist answer 409 and are left alone, and order ingestion is idempotent by `order_id`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from starling_devtools.harness.tokens import bearer, login

DEMO_AGENTS: list[dict[str, Any]] = [
    {
        "agent_id": "brief",
        "name": "One-sentence brief",
        "description": "The single most representative sentence of a text.",
        "kind": "summarizer",
        "config": {"max_sentences": 1},
    },
    {
        "agent_id": "support-triage",
        "name": "Support triage",
        "description": "Routes a customer message to billing, bug or praise.",
        "kind": "classifier",
        "config": {
            "labels": {
                "billing": ["invoice", "refund", "charge", "price", "payment"],
                "bug": ["error", "crash", "broken", "bug", "fails"],
                "praise": ["love", "great", "thanks", "excellent"],
            }
        },
    },
]

PRODUCTS = [
    ("p-coffee", "Coffee beans", "12.50"),
    ("p-filter", "Filter papers", "3.20"),
    ("p-grinder", "Hand grinder", "39.00"),
    ("p-mug", "Enamel mug", "8.90"),
    ("p-kettle", "Gooseneck kettle", "54.00"),
]


def demo_orders(count: int = 30, *, start: datetime | None = None) -> list[dict[str, Any]]:
    """`count` orders with stable ids, so a second seeding is recognised as a replay."""
    start = start or datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    orders = []
    for number in range(count):
        items = []
        for offset in range(1 + number % 3):
            product_id, title, price = PRODUCTS[(number + offset * 2) % len(PRODUCTS)]
            items.append(
                {
                    "product_id": product_id,
                    "title": title,
                    "quantity": 1 + (number * 7 + offset) % 4,
                    "unit_price": price,
                }
            )
        orders.append(
            {
                "order_id": f"demo-{number:04d}",
                "created_at": (start + timedelta(hours=5 * number)).isoformat(),
                "items": items,
            }
        )
    return orders


def units(orders: Iterable[Mapping[str, Any]]) -> Counter[str]:
    """Units bought per product over `orders`: what reporting's `/top-products` must count."""
    total: Counter[str] = Counter()
    for order in orders:
        for item in order["items"]:
            total[item["product_id"]] += int(item["quantity"])
    return total


@dataclass(frozen=True)
class Seeded:
    token: str
    agents_created: list[str]
    orders_accepted: int
    orders_duplicates: int


def seed(urls: Mapping[str, str], email: str, password: str, *, orders: int = 30) -> Seeded:
    """The demo agents and orders, through the agents and reporting APIs, as the administrator."""
    with httpx.Client(timeout=10.0) as client:
        access = str(login(client, urls["users"], email, password)["access_token"])
        created = []
        for agent in DEMO_AGENTS:
            response = client.post(f"{urls['agents']}/api/v1/agents", json=agent, headers=bearer(access))
            if response.status_code == 201:
                created.append(agent["agent_id"])
            elif response.status_code != 409:
                response.raise_for_status()
        body = {"orders": demo_orders(orders)}
        response = client.post(f"{urls['reporting']}/api/v1/orders", json=body, headers=bearer(access))
        response.raise_for_status()
        answer = response.json()
        return Seeded(access, created, int(answer["accepted"]), int(answer["duplicates"]))
