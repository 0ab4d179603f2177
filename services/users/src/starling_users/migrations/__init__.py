"""Alembic history of the users database; env.py is loaded by Alembic by path."""
