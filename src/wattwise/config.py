"""Typed settings (pydantic-settings), built once in the entry point and passed down.

Sources, highest priority first: init arguments, environment (``WATTWISE_`` prefix, nested
delimiter ``__``), a ``.env`` file, secret files. There is no module-level singleton.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

Mode = Literal["observe", "dry-run", "armed"]


class Settings(BaseSettings):
    """Every run-time knob of wattwise."""

    model_config = SettingsConfigDict(
        env_prefix="WATTWISE_", env_nested_delimiter="__", env_file=".env", extra="ignore", frozen=True
    )

    data_dir: Path = Path("var")
    datasets_dir: Path = Path("../shared/datasets")
    store: Literal["duckdb", "postgres"] = "duckdb"
    duckdb_path: Path = Path("var/wattwise.duckdb")
    postgres_dsn: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/postgres")
    mode: Mode = "observe"
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8640, ge=1, le=65535)
    nats_url: str = "nats://127.0.0.1:4222"
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    admin_token: SecretStr | None = None
    decision_period_s: float = Field(default=5.0, gt=0)
    log_level: str = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit source order: init > env > .env > secret files."""
        return init_settings, env_settings, dotenv_settings, file_secret_settings
