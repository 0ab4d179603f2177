"""What the users service refuses, each with the status and `detail` its client is told."""

from __future__ import annotations

from types import MappingProxyType

from starling_core.errors import DomainError, RequestValidationError


class UserNotFound(DomainError):
    """Also the answer for someone else's id, so ids cannot be enumerated."""

    status_code = 404

    def __init__(self, user_id: str) -> None:
        super().__init__(f"User {user_id} not found")
        self.user_id = user_id


class EmailTaken(DomainError):
    status_code = 409
    detail_text = "A user with this email already exists"


class InvalidCredentials(DomainError):
    """The same for an unknown email as for a wrong password."""

    status_code = 401
    detail_text = "Invalid email or password"
    headers = MappingProxyType({"WWW-Authenticate": "Bearer"})


class InvalidRefreshToken(DomainError):
    """The same for an unknown, expired, reused or revoked refresh token."""

    status_code = 401
    detail_text = "Invalid refresh token"
    headers = MappingProxyType({"WWW-Authenticate": "Bearer"})


class TokenRevoked(DomainError):
    """A validly signed access token whose user is gone, or that a later change of the user ended."""

    status_code = 401
    detail_text = "Token has been revoked: log in again"
    headers = MappingProxyType({"WWW-Authenticate": 'Bearer error="invalid_token"'})


class RoleChangeForbidden(DomainError):
    status_code = 403
    detail_text = "Only an administrator can change a role"


class AdministratorRequired(DomainError):
    status_code = 403
    detail_text = "Only an administrator can list users"


class LastAdministrator(DomainError):
    status_code = 409
    detail_text = (
        "This is the only administrator: promote another user to administrator before demoting "
        "or deleting this one"
    )


class CurrentPasswordRequired(RequestValidationError):
    """A user's own new password needs their current one: a stolen access token must not set a password
    its thief knows, which would outlive the token. Missing or wrong, the same answer."""

    def __init__(self) -> None:
        message = "Your current password is required, and must be right, to set a new one"
        super().__init__([{"loc": ["body", "current_password"], "msg": message, "type": "value_error"}])
