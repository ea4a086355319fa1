"""The Alembic history, shipped inside the package as ``digest.migrations`` (see pyproject.toml)."""
