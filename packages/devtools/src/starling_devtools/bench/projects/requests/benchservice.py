"""The request project's app and tables: the users service's, which its one test calls through the kit."""

from starling_users.app import create_app
from starling_users.models import UsersBase

metadata = UsersBase.metadata

__all__ = ["create_app", "metadata"]
