"""The Jinja templates, shipped inside the package as ``digest.templates`` (found with importlib.resources)."""
