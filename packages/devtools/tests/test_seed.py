from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from starling_devtools.seed import DEMO_AGENTS, demo_orders, units


def test_demo_orders_are_stable_so_seeding_twice_replays_them() -> None:
    first, second = demo_orders(30), demo_orders(30)

    assert first == second
    assert len({order["order_id"] for order in first}) == 30


def test_demo_orders_are_valid_ingestion_input() -> None:
    for order in demo_orders(30):
        assert datetime.fromisoformat(order["created_at"]).tzinfo is not None
        assert 1 <= len(order["items"]) <= 3
        for item in order["items"]:
            assert item["quantity"] >= 1
            assert Decimal(item["unit_price"]) >= 0


def test_demo_agents_cover_the_built_in_kinds_with_their_own_ids() -> None:
    assert {agent["kind"] for agent in DEMO_AGENTS} == {"summarizer", "classifier"}
    assert {agent["agent_id"] for agent in DEMO_AGENTS}.isdisjoint({"summarizer", "classifier"})


def test_units_sum_quantities_per_product() -> None:
    orders = [
        {"items": [{"product_id": "a", "quantity": 2}, {"product_id": "b", "quantity": 1}]},
        {"items": [{"product_id": "a", "quantity": 5}]},
    ]
    assert units(orders) == {"a": 7, "b": 1}
