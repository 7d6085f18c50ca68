"""Run alembic from the service (`voucher-relay migrate`, `serve` on start) and from tests."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL

from app.config import get_settings, parse_database_url
from app.errors import ConfigError

# migrations/ sits beside the app package (in the repository and in the Docker image).
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(url: URL | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.attributes["url"] = url
    return config


def resolve_url_for_alembic(config: Config) -> URL:
    """The URL handed in by the caller, else DATABASE_URL (alembic's own CLI, for developers)."""
    url = config.attributes.get("url")
    if isinstance(url, URL):
        return url
    configured = get_settings().database_url
    if configured is None:
        raise ConfigError(
            "DATABASE_URL must be set to run alembic directly; or use `voucher-relay migrate`"
        )
    return parse_database_url(configured.get_secret_value())


def upgrade(url: URL, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: URL, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)
