"""Export and import of distributions as YAML or JSON files (configuration kept in git)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.ext.asyncio import AsyncSession

from app.distributions import repository, service


def dump(document: dict[str, Any], *, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def load(path: Path) -> Any:
    """Read YAML or JSON (JSON is YAML, but a .json file gets JSON's clearer errors)."""
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(
            f"{path} is not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}"
        ) from None


async def export_text(*, session: AsyncSession, fmt: str) -> str:
    distributions = list(await repository.list_all(session))
    return dump(service.export_document(distributions), fmt=fmt)


async def import_file(*, session: AsyncSession, path: Path) -> service.ImportReport:
    """Upsert the file's distributions in `session`; the caller commits (or not, for a dry run)."""
    configs = service.parse_document(load(path))
    return await service.import_configs(session=session, configs=configs)
