"""What `pip install .` ships: every package, the templates, the migrations and the web's static files,
found through importlib.resources (the wheel itself is built and smoke-tested by .ci/run and .ci/smoke)."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAPPED = {"digest.templates": "templates", "digest.migrations": "migrations"}


def setuptools_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_under_digest_is_listed_for_the_wheel() -> None:
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "digest").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert set(setuptools_config()["packages"]) == found | set(MAPPED)
    assert setuptools_config()["package-dir"] == MAPPED


def test_every_template_and_migration_file_matches_a_package_data_pattern() -> None:
    data = setuptools_config()["package-data"]
    for package, folder in MAPPED.items():
        suffixes = {pattern.rsplit("*", 1)[-1] for pattern in data[package]}
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.name != "__init__.py":
                assert any(path.name.endswith(suffix) for suffix in suffixes), path


def test_templates_migrations_and_static_files_are_found_as_package_resources() -> None:
    assert (resources.files("digest.templates") / "email" / "digest" / "body.html").is_file()
    assert (resources.files("digest.templates") / "web" / "base.html").is_file()
    assert (resources.files("digest.migrations") / "env.py").is_file()
    assert any(
        p.name.startswith("0001_") for p in (resources.files("digest.migrations") / "versions").iterdir()
    )
    for name in ("style.css", "favicon.ico", "favicon.svg"):
        assert (resources.files("digest.web") / "static" / name).is_file()
