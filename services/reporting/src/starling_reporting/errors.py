"""The reporting service's refusals: each says the status and `detail` a client is told."""

from __future__ import annotations

from typing import ClassVar

from starling_core.errors import DomainError


class NoOrderData(DomainError):
    """No order has ever been stored, so there is nothing to rank yet."""

    status_code = 503
    detail_text = "No order data has arrived yet"


class ExtractionNotConfigured(DomainError):
    status_code = 503
    detail_text = "Extraction is not configured: set STARLING_REPORTING_UPSTREAM_URL"


class UpstreamUnavailable(DomainError):
    """A remote API could not be reached or did not answer usefully, retries included."""

    status_code = 503
    remote: ClassVar[str] = "A remote API"

    def __init__(self, reason: str) -> None:
        super().__init__(f"{self.remote} is unavailable: {reason}")
        self.reason = reason


class OrdersUpstreamUnavailable(UpstreamUnavailable):
    remote = "The upstream orders API"


class AgentsUnavailable(UpstreamUnavailable):
    """The agents service's runs API failed; the usage report answers 503 only while no run is stored."""

    remote = "The agents service"
