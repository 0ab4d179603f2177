"""email keys recomputed with email-validator

Every stored address gets the key registration now computes (`starling_users.emails.email_key`): NFKC,
case-folded, its domain in ASCII. Spellings of one address that were registered as separate accounts
now share a key: the oldest account keeps it, and each later one gets `<id>@duplicate.invalid`, a key
no address has (so no login finds it), and is logged by id for an administrator to merge or delete.
An address that is no longer valid (an invisible character in it) keeps the key it had.
"""

import logging
from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from starling_users.emails import email_key

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

logger = logging.getLogger("starling.users")

users = sa.table(
    "users",
    sa.column("id", sa.String),
    sa.column("email", sa.String),
    sa.column("email_normalized", sa.String),
    sa.column("created_at", sa.DateTime),
)


def upgrade() -> None:
    _rekey(_current_key)


def downgrade() -> None:
    _rekey(lambda email, old: email.strip().lower())  # revision 0001's rule


def _current_key(email: str, old: str) -> str:
    try:
        return email_key(email)
    except ValueError:
        logger.warning("an address no longer valid keeps its old key; its account should be reviewed")
        return old


def _rekey(compute: Callable[[str, str], str]) -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(users.c.id, users.c.email, users.c.email_normalized).order_by(
            users.c.created_at, users.c.id
        )
    ).all()
    taken: set[str] = set()
    changed: dict[str, str] = {}
    for user_id, email, old in rows:
        key = compute(email, old)
        if key in taken:
            logger.warning("user %s has the address of an older account; it keeps no email key", user_id)
            key = f"{user_id}@duplicate.invalid"
        taken.add(key)
        if key != old:
            changed[user_id] = key
    if not changed:
        return
    # Every changed row steps aside first, so that no statement finds a key still held by another row.
    by_id = users.c.id == sa.bindparam("user_id")
    step = sa.update(users).where(by_id).values(email_normalized=sa.bindparam("key"))
    connection.execute(step, [{"user_id": i, "key": f"{i}@rekeying.invalid"} for i in changed])
    connection.execute(step, [{"user_id": i, "key": key} for i, key in changed.items()])
