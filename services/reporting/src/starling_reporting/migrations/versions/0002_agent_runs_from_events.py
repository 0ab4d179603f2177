"""agent_runs.created_at may be unknown: a run learned from its run.finished event carries no creation time"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agent_runs") as batch:
        batch.alter_column("created_at", existing_type=sa.DateTime(timezone=True), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE agent_runs SET created_at = finished_at WHERE created_at IS NULL")
    with op.batch_alter_table("agent_runs") as batch:
        batch.alter_column("created_at", existing_type=sa.DateTime(timezone=True), nullable=False)
