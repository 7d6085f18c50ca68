"""docs/configuration.md and .env.example cannot drift from the Settings class."""

from __future__ import annotations

import re
from pathlib import Path

from app.config import Settings
from app.configuration_page import PAGE, render

REPO = Path(__file__).resolve().parents[1]
# Read by docker-compose.yml only (the `tls` profile's Caddy), not by voucher-relay.
COMPOSE_ONLY = {"RELAY_DOMAIN"}


def test_the_configuration_page_is_generated_from_the_settings() -> None:
    assert PAGE.read_text() == render(), "run `make docs` and commit docs/configuration.md"


def test_every_setting_has_a_description() -> None:
    assert [name for name, field in Settings.model_fields.items() if not field.description] == []


def test_env_example_names_every_setting_and_no_other() -> None:
    named = set(re.findall(r"^# ([A-Z][A-Z0-9_]+)=", (REPO / ".env.example").read_text(), re.M))
    settings = {name.upper() for name in Settings.model_fields}
    assert settings - named == set(), "settings missing from .env.example"
    assert named - settings == COMPOSE_ONLY
