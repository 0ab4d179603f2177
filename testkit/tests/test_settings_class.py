"""The kit builds the settings class that the package's app factory declares."""

from __future__ import annotations

import functools

import pytest
from starlette.applications import Starlette

from starling_core.settings import ServiceSettings
from starling_testkit.plugin import settings_class


class ShopSettings(ServiceSettings):
    service_name: str = "shop"


def plain(settings: ShopSettings) -> Starlette:
    raise AssertionError("never called")


def optional(settings: ShopSettings | None = None) -> Starlette:
    raise AssertionError("never called")


def untyped(settings):  # type: ignore[no-untyped-def]
    raise AssertionError("never called")


def configurable(settings: ShopSettings, *, database: object = None, extra: int = 0) -> Starlette:
    raise AssertionError("never called")


def test_annotated_settings_class_is_used() -> None:
    assert settings_class(plain) is ShopSettings


def test_optional_settings_class_is_unwrapped() -> None:
    assert settings_class(optional) is ShopSettings


def test_a_partial_factory_is_read_through() -> None:
    assert settings_class(functools.partial(configurable, extra=1)) is ShopSettings


def test_an_unannotated_factory_fails_saying_how_to_fix_it() -> None:
    with pytest.raises(pytest.fail.Exception, match="annotate its first parameter"):
        settings_class(untyped)
