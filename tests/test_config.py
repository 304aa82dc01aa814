"""Settings: WATTWISE_ environment, nested __ keys, explicit source order, secrets never shown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr, ValidationError

from wattwise.config import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No WATTWISE_ variable and no .env from the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("WATTWISE_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_defaults_are_safe() -> None:
    s = Settings()
    assert s.mode == "observe"  # never armed by default
    assert s.store == "duckdb"
    assert s.api_host == "127.0.0.1"
    assert s.admin_token is None


def test_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTWISE_MODE", "dry-run")
    monkeypatch.setenv("WATTWISE_API_PORT", "9001")
    monkeypatch.setenv("MODE", "armed")  # no prefix: ignored
    s = Settings()
    assert (s.mode, s.api_port) == ("dry-run", 9001)


class Nested(BaseModel):
    host: str = "localhost"
    port: int = 1


class WithNested(Settings):
    broker: Nested = Nested()


def test_nested_delimiter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTWISE_BROKER__PORT", "4222")
    monkeypatch.setenv("WATTWISE_BROKER__HOST", "nats.local")
    assert WithNested().broker == Nested(host="nats.local", port=4222)


def test_source_order_init_then_env_then_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WATTWISE_LOG_LEVEL=DEBUG\nWATTWISE_API_PORT=7000\n", encoding="utf-8")
    assert (Settings().log_level, Settings().api_port) == ("DEBUG", 7000)
    monkeypatch.setenv("WATTWISE_API_PORT", "7100")
    assert Settings().api_port == 7100  # env beats .env
    assert Settings(api_port=7200).api_port == 7200  # init beats env


def test_secrets_are_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTWISE_ADMIN_TOKEN", "hunter2-token")
    monkeypatch.setenv("WATTWISE_POSTGRES_DSN", "postgresql://u:pa55word@db/x")
    s = Settings()
    assert isinstance(s.admin_token, SecretStr)
    assert s.admin_token.get_secret_value() == "hunter2-token"
    for shown in (repr(s), str(s), s.model_dump_json(), str(s.model_dump())):
        assert "hunter2" not in shown
        assert "pa55word" not in shown


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTWISE_MODE", "yolo")
    with pytest.raises(ValidationError, match="mode"):
        Settings()
    monkeypatch.delenv("WATTWISE_MODE")
    with pytest.raises(ValidationError):
        Settings(api_port=0)
    with pytest.raises(ValidationError):
        Settings(decision_period_s=0)


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(ValidationError):
        s.mode = "armed"  # type: ignore[misc]
