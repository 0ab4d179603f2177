"""What the service layer can refuse; routes turn these into HTTP answers."""

from __future__ import annotations


class UserNotFound(Exception):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"User {user_id} not found")
        self.user_id = user_id


class EmailTaken(Exception):
    def __init__(self) -> None:
        super().__init__("A user with this email already exists")


class InvalidCredentials(Exception):
    def __init__(self) -> None:
        super().__init__("Invalid email or password")


class RoleChangeForbidden(Exception):
    def __init__(self) -> None:
        super().__init__("Only an administrator (scope users:admin) can change a role")
