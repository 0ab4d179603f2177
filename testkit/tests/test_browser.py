"""Headless Chromium for page tests: found, installed by root when missing, never silently skipped."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from starling_testkit import browser


def executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def no_browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH with no browser on it; returns the folder an install may put one in."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    monkeypatch.delenv(browser.BROWSER_VARIABLE, raising=False)
    return folder


def test_the_browser_named_by_the_variable_comes_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = executable(tmp_path / "my-chrome")
    monkeypatch.setenv(browser.BROWSER_VARIABLE, str(chosen))

    assert browser.find_chromium() == chosen


def test_a_variable_naming_no_browser_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(browser.BROWSER_VARIABLE, str(tmp_path / "absent"))

    with pytest.raises(browser.BrowserUnavailable, match=browser.BROWSER_VARIABLE):
        browser.find_chromium()


def test_chromium_on_path_is_found(no_browser: Path) -> None:
    installed = executable(no_browser / "chromium")

    assert browser.find_chromium() == installed


def test_without_root_a_missing_browser_fails_saying_what_to_install(
    no_browser: Path, tmp_path: Path
) -> None:
    with pytest.raises(browser.BrowserUnavailable, match="apt-get install chromium"):
        browser.chromium(root=False, lock_dir=tmp_path)


def test_as_root_a_missing_browser_is_installed_once(no_browser: Path, tmp_path: Path) -> None:
    installs: list[str] = []

    def install() -> None:
        installs.append("chromium")
        executable(no_browser / "chromium")

    first = browser.chromium(root=True, install=install, lock_dir=tmp_path)
    second = browser.chromium(root=True, install=install, lock_dir=tmp_path)

    assert first == second == no_browser / "chromium"
    assert installs == ["chromium"]


def test_an_install_that_brings_no_browser_fails(no_browser: Path, tmp_path: Path) -> None:
    with pytest.raises(browser.BrowserUnavailable, match="still no browser"):
        browser.chromium(root=True, install=lambda: None, lock_dir=tmp_path)


def test_the_flags_keep_the_browser_off_every_network_but_loopback() -> None:
    rules = [flag for flag in browser.FLAGS if flag.startswith("--host-resolver-rules=")]

    assert rules == ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"]
    assert "--disable-background-networking" in browser.FLAGS
