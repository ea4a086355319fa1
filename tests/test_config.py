from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from digest.config import ConfigError, Settings, load_settings, prepare_folders

ROOT = Path(__file__).resolve().parent.parent


def _setting_names() -> set[str]:
    return {"DIGEST_" + name.upper() for name in Settings.model_fields}


def test_every_setting_is_documented_in_env_example() -> None:
    documented = set(re.findall(r"^#?\s*(DIGEST_[A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert _setting_names() - documented == set()
    assert documented - _setting_names() == set()


def test_every_setting_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = {name for name in _setting_names() if f"`{name}`" not in readme}
    assert missing == set()


def test_bad_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SMTP_PORT", "not-a-port")
    with pytest.raises(ConfigError, match="DIGEST_SMTP_PORT"):
        load_settings()


def test_bad_base_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_BASE_URL", "digest.example.org")
    with pytest.raises(ConfigError, match="DIGEST_BASE_URL"):
        load_settings()


def test_postgres_without_secret_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_DATABASE_URL", "postgresql+psycopg://u@localhost/db")
    with pytest.raises(ConfigError, match="DIGEST_SECRET_KEY"):
        load_settings()


def test_defaults_are_embedded(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert settings.is_embedded
    assert settings.db_url == f"sqlite:///{(tmp_path / 'digest.sqlite3').resolve()}"
    assert settings.inbox == tmp_path / "inbox"
    assert settings.outbox == tmp_path / "outbox"


def test_generated_secret_is_stable_and_private(tmp_path: Path) -> None:
    first = load_settings(data_dir=tmp_path).secret
    second = load_settings(data_dir=tmp_path).secret
    assert first == second and len(first) >= 32
    mode = stat.S_IMODE(os.stat(tmp_path / "secret_key").st_mode)
    assert mode == 0o600


def test_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("DIGEST_RECENCY_DAYS=3\n")
    assert load_settings().recency_days == 3


def test_the_hugging_face_pull_is_on_by_default_and_an_empty_setting_turns_it_off(monkeypatch) -> None:
    monkeypatch.delenv("DIGEST_HF_DAILY_URL")
    assert load_settings().hf_daily_url == "https://huggingface.co/api/daily_papers"
    monkeypatch.setenv("DIGEST_HF_DAILY_URL", "")
    assert load_settings().hf_daily_url is None


def test_errors_show_secrets_as_their_length_and_urls_without_their_password(monkeypatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET_KEY", "tooshort")
    monkeypatch.setenv("DIGEST_DATABASE_URL", "mysql://admin:S3cretPass@db/x")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "DIGEST_SECRET_KEY" in message and "a value of 8 characters" in message
    assert "mysql://admin:***@db/x" in message
    assert "tooshort" not in message and "S3cretPass" not in message


def test_base_url_is_set_only_when_configured(monkeypatch, tmp_path: Path) -> None:
    assert not load_settings(data_dir=tmp_path).base_url_is_set
    monkeypatch.setenv("DIGEST_BASE_URL", "https://digest.example.org")
    assert load_settings(data_dir=tmp_path).base_url_is_set


def test_prepare_folders_names_the_setting_of_a_folder_it_cannot_create(tmp_path: Path) -> None:
    (tmp_path / "outbox-file").write_text("in the way")
    settings = load_settings(data_dir=tmp_path / "var", outbox_dir=tmp_path / "outbox-file" / "out")
    with pytest.raises(ConfigError, match="DIGEST_OUTBOX_DIR: cannot create .*outbox-file/out"):
        prepare_folders(settings)
    assert (tmp_path / "var" / "inbox").is_dir()
