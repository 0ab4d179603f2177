"""The Alembic environment of every service: what to migrate comes in through the configuration that
`starling_core.migrations.alembic_config` builds (the connection or URL, and the target metadata)."""

from starling_core.migrations import run_env

run_env()
