from starling_core.migrations import run_env
from starling_users.models import UsersBase

run_env(UsersBase.metadata)
