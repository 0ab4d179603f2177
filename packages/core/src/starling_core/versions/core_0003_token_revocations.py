"""token_revocations: tokens issued before a user's change or deletion are refused"""

import sqlalchemy as sa
from alembic import op

revision = "core_0003"
down_revision = "core_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "token_revocations",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_token_revocations")),
    )
    op.create_index("ix_token_revocations_recorded_at", "token_revocations", ["recorded_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_token_revocations_recorded_at", table_name="token_revocations")
    op.drop_table("token_revocations")
