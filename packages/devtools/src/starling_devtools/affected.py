"""Which packages a change touches: the members whose files changed, and every member depending on them.

A file outside every member changes how everything is built or tested (the lock, the root
configuration, the noxfile, CI), so it selects every member; Markdown outside the members is only
prose and selects none.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from starling_devtools.workspace import Member, dependents, load, owner


def changed_files(root: Path, ref: str) -> list[str]:
    """Files changed since `ref`'s merge base with HEAD: commits, staged and unstaged edits, new files."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout

    base = git("merge-base", ref, "HEAD").strip()
    tracked = git("diff", "--name-only", base).splitlines()
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the members affected by changes since a git ref.")
    parser.add_argument("ref", help="e.g. origin/main or HEAD~1")
    parser.add_argument("--root", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    members = load(args.root)
    for name in sorted(affected(members, changed_files(args.root, args.ref))):
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
