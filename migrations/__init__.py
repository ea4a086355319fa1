"""The Alembic history, shipped inside the package as ``digest.migrations`` (found with importlib.resources)."""
