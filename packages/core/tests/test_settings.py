"""Settings: shared names, service prefixes, and the production guard."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from starling_core.settings import DEVELOPMENT_JWT_SECRET, ServiceSettings

from .itemsapp import ItemSettings


class ShopSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STARLING_SHOP_")
    service_name: str = "shop"


def test_database_url_defaults_to_a_file_per_service() -> None:
    assert ItemSettings().database_url == "sqlite+aiosqlite:///.data/items.db"


def test_shared_and_prefixed_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STARLING_JWT_ISSUER", "issuer-x")
    monkeypatch.setenv("STARLING_RATE_LIMIT", "5/second")
    monkeypatch.setenv("STARLING_SHOP_DATABASE_URL", "sqlite+aiosqlite:///shop.db")
    monkeypatch.setenv("STARLING_SHOP_AUTO_MIGRATE", "false")
    settings = ShopSettings()
    assert settings.jwt_issuer == "issuer-x"
    assert settings.rate_limit == "5/second"
    assert settings.database_url == "sqlite+aiosqlite:///shop.db"
    assert settings.auto_migrate is False


def test_production_refuses_the_development_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STARLING_ENV", "production")
    with pytest.raises(ValidationError, match="STARLING_JWT_SECRET"):
        ShopSettings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STARLING_SHOP_DATABASE_URL", "postgresql+asyncpg://shop:db-pass-4711@db/shop"),
        ("STARLING_KAFKA_SASL_PASSWORD", "kafka-pass-4711"),
    ],
)
def test_a_refusal_at_start_up_never_prints_the_other_settings(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    # pydantic's message quoted the input it refused, every variable read, ends and all; it goes to the
    # crash log of a service that will not start.
    monkeypatch.setenv("STARLING_ENV", "production")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as refused:
        ShopSettings()
    assert "STARLING_JWT_SECRET" in str(refused.value)
    assert "4711" not in str(refused.value)


def test_production_starts_with_a_real_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STARLING_ENV", "production")
    monkeypatch.setenv("STARLING_JWT_SECRET", "a-real-production-secret-of-enough-length")
    settings = ShopSettings()
    assert settings.jwt_secret.get_secret_value() != DEVELOPMENT_JWT_SECRET
