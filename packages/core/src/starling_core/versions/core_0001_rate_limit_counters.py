"""rate_limit_counters: the rate limiter's shared counts (STARLING_RATE_LIMIT_BACKEND=database)"""

import sqlalchemy as sa
from alembic import op

revision = "core_0001"
down_revision = None
branch_labels = ("starling_core",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_counters",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start", name=op.f("pk_rate_limit_counters")),
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_table("rate_limit_counters")
