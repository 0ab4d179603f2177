"""Which packages a change touches: the members whose files changed, and every member depending on them.

A file outside every member changes how everything is built or tested (the lock, the root
configuration, the noxfile, CI), so it selects every member; Markdown outside the members is only
prose and selects none. A lock whose only changes are members' own entries (a new service enters the
lock, a member's requirements change) selects those members, not all: the packages from outside the
workspace, the ones every suite installs, are as they were.
"""

from __future__ import annotations

import argparse
import functools
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from starling_devtools.workspace import Member, dependents, load, owner

LOCK = "uv.lock"


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def _base(root: Path, ref: str) -> str:
    return _git(root, "merge-base", ref, "HEAD").strip()


def changed_files(root: Path, ref: str) -> list[str]:
    """Files changed since `ref`'s merge base with HEAD: commits, staged and unstaged edits, new files."""
    git = functools.partial(_git, root)
    tracked = git("diff", "--name-only", _base(root, ref)).splitlines()
    untracked = git("ls-files", "--others", "--exclude-standard").splitlines()
    return sorted({*tracked, *untracked} - {""})


def affected(members: Mapping[str, Member], files: Iterable[str]) -> set[str]:
    touched: set[str] = set()
    for file in files:
        name = owner(members, file)
        if name is not None:
            touched.add(name)
        elif not file.endswith(".md"):
            return set(members)
    return dependents(members, touched)


def lock_members(before: str, after: str, members: Mapping[str, Member]) -> set[str] | None:
    """The members whose entries differ between two texts of the lock, or None when anything else in it
    did (a package from outside the workspace, the lock's own settings): then every member is affected."""
    old, new = tomllib.loads(before), tomllib.loads(after)

    def packages(lock: Mapping[str, Any]) -> dict[str, Any]:
        return {package["name"]: package for package in lock.get("package", [])}

    def settings(lock: Mapping[str, Any]) -> dict[str, Any]:
        manifest = {key: value for key, value in lock.get("manifest", {}).items() if key != "members"}
        return {
            **{key: value for key, value in lock.items() if key not in ("package", "manifest")},
            **manifest,
        }

    if settings(old) != settings(new):
        return None
    earlier, now = packages(old), packages(new)
    changed = {name for name in earlier.keys() | now.keys() if earlier.get(name) != now.get(name)}
    by_distribution = {member.distribution: name for name, member in members.items()}
    if not changed <= by_distribution.keys():
        return None
    return {by_distribution[distribution] for distribution in changed}


def selection(root: Path, ref: str, files: Sequence[str] | None = None) -> set[str]:
    """The members a change since `ref` affects (what `main` prints); `files`, when the caller has listed
    them already, are `changed_files(root, ref)`."""
    members = load(root)
    files = changed_files(root, ref) if files is None else list(files)
    if LOCK in files:
        before = _git(root, "show", f"{_base(root, ref)}:{LOCK}")
        locked = lock_members(before, (root / LOCK).read_text(), members)
        if locked is not None:
            files = [file for file in files if file != LOCK]
            files += [str(members[name].path / "pyproject.toml") for name in sorted(locked)]
    return affected(members, files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the members affected by changes since a git ref.")
    parser.add_argument("ref", help="e.g. origin/main or HEAD~1")
    parser.add_argument("--root", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    for name in sorted(selection(args.root, args.ref)):
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
