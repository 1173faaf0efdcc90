"""Alembic migrations of the monitor's database."""
