from __future__ import annotations

from pathlib import Path

from starling_devtools.workspace import dependents, load, owner


def test_every_member_is_found_with_its_distribution(repo_root: Path) -> None:
    members = load(repo_root)

    assert {"core", "testkit", "users", "agents", "reporting", "devtools"} <= members.keys()
    assert members["users"].distribution == "starling-users"
    assert members["users"].path == Path("services/users")
    assert members["users"].is_service
    assert not members["core"].is_service


def test_dependencies_include_the_test_group(repo_root: Path) -> None:
    members = load(repo_root)

    # `starling-testkit` is named only in the users' test group, and still counts
    assert members["users"].depends_on == {"core", "testkit"}
    assert members["testkit"].depends_on == {"core", "servers"}
    assert members["core"].depends_on == {"testkit"}  # core's suite uses the kit
    # the tools run on core and the starters; only their tests and the bench use the kit
    assert members["devtools"].depends_on == {"core", "servers", "testkit"}
    assert members["servers"].depends_on == {"testkit"}  # its suite runs under the kit's configuration


def test_a_change_in_core_reaches_every_member_that_uses_it(repo_root: Path) -> None:
    members = load(repo_root)

    assert dependents(members, {"core"}) == set(members)  # every member builds on core
    # a suite that runs the users service as a real collaborator (assessments' does) depends on it
    assert dependents(members, {"users"}) == {"users"} | {
        name for name, member in members.items() if "users" in member.depends_on
    }
    assert "assessments" in dependents(members, {"users"})
    assert dependents(members, {"devtools"}) == {"devtools"}


def test_files_belong_to_the_member_whose_folder_holds_them(repo_root: Path) -> None:
    members = load(repo_root)

    assert owner(members, "services/users/src/starling_users/routes.py") == "users"
    assert owner(members, "testkit/README.md") == "testkit"
    assert owner(members, "services/users-extra/x.py") is None  # a prefix of a name is not the folder
    assert owner(members, "noxfile.py") is None
