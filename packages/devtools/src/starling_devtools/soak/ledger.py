"""What the services acknowledged, by their own answers: afterwards the databases must hold exactly this."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from starling_devtools.seed import units


@dataclass
class Ledger:
    """Every write some answer accepted, and what each answer said about it."""

    registered: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)  # registered, then deleted by an administrator
    sync_runs: dict[str, str] = field(default_factory=dict)  # run id -> status answered
    background_runs: set[str] = field(default_factory=set)
    # order id -> its units per product, for every order some answer counted as accepted
    orders: dict[str, Counter[str]] = field(default_factory=dict)
    # orders of batches that got no answer: stored or not, nobody knows
    uncertain_orders: set[str] = field(default_factory=set)
    batches: Counter[str] = field(default_factory=Counter)
    accepted: int = 0
    duplicates: int = 0
    replayed: int = 0  # orders sent again after an answer had counted them
    mismatches: list[str] = field(default_factory=list)
    # batches whose every order is accepted: what replays are drawn from
    settled_batches: list[list[dict[str, Any]]] = field(default_factory=list)

    def record_batch(self, kind: str, batch: Sequence[dict[str, Any]], answer: dict[str, Any]) -> None:
        """Book one 202: every order not accepted before must be `accepted`, every other a duplicate."""
        known = sum(order["order_id"] in self.orders for order in batch)
        expected = {"accepted": len(batch) - known, "duplicates": known}
        got = {"accepted": answer.get("accepted"), "duplicates": answer.get("duplicates")}
        if got != expected and len(self.mismatches) < 20:
            self.mismatches.append(f"{kind}: expected {expected}, answered {got}")
        self.batches[kind] += 1
        self.accepted += int(answer.get("accepted") or 0)
        self.duplicates += int(answer.get("duplicates") or 0)
        self.replayed += known
        for order in batch:
            self.orders.setdefault(order["order_id"], units([order]))
        self.settled_batches.append(list(batch))

    def units_by_product(self) -> Counter[str]:
        return sum(self.orders.values(), Counter())

    @property
    def runs(self) -> set[str]:
        return set(self.sync_runs) | self.background_runs

    @property
    def users(self) -> set[str]:
        """The addresses that must be stored: registered and not deleted, in lower case."""
        return {email.lower() for email in self.registered - self.deleted}
