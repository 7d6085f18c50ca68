"""Export and import of distributions as YAML or JSON files (configuration kept in git).

An import reads and checks every file before it touches the database: a missing file, a file
that does not parse and each invalid field is one problem line naming the file and the path in
it (`welcome.yaml: welcome-code: mapping[2].source: ...`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from sqlalchemy.ext.asyncio import AsyncSession

from app.distributions import repository, rules, service
from app.distributions.schemas import DistributionConfig
from app.errors import FileProblems

SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Checked:
    """Distributions read from files, each with the file it came from."""

    configs: list[DistributionConfig]
    sources: dict[str, Path]


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
        detail = " ".join(str(exc).split())
        raise ValueError(f"not valid {path.suffix.lstrip('.') or 'YAML'}: {detail}") from None


def files_in(paths: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """The files named, and those in the folders named (YAML and JSON, sorted); problems for
    paths that do not exist."""
    found: list[Path] = []
    problems: list[str] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix in SUFFIXES))
        elif path.is_file():
            found.append(path)
        else:
            problems.append(f"{path}: no such file or folder")
    return found, problems


def entries(document: Any) -> list[Any] | None:
    """The distributions of a document: `{"distributions": [...]}` (what export writes), a list,
    or one distribution on its own (a file per distribution). None: none of those."""
    if isinstance(document, dict) and "distributions" in document:
        items = document["distributions"]
        return items if isinstance(items, list) else None
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        return [document]
    return None


def location(loc: tuple[int | str, ...]) -> str:
    """pydantic's ('mapping', 2, 'source') as `mapping[2].source`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _message(err: ErrorDetails) -> str:
    error = err.get("ctx", {}).get("error")
    if err["type"] == "value_error" and error is not None:
        return str(error)
    if err["type"] == "extra_forbidden":
        return "unknown field"
    return err["msg"][:1].lower() + err["msg"][1:]


def check(paths: Sequence[Path]) -> Checked:
    """Read and validate every file; FileProblems lists everything wrong, one line each."""
    files, problems = files_in(paths)
    if not files and not problems:
        problems.append(f"{', '.join(map(str, paths))}: no .yaml, .yml or .json file")
    configs: list[DistributionConfig] = []
    sources: dict[str, Path] = {}
    for path in files:
        try:
            items = entries(load(path))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            problems.append(f"{path}: {getattr(exc, 'strerror', None) or exc}")
            continue
        if items is None:
            problems.append(
                f"{path}: expected a distribution, a list of them, or {{distributions: [...]}}"
            )
            continue
        for index, item in enumerate(items):
            name = item.get("name") if isinstance(item, dict) else None
            label = f"{name}" if isinstance(name, str) and name else f"distributions[{index}]"
            try:
                config = DistributionConfig.model_validate(item)
            except ValidationError as exc:
                problems.extend(
                    ": ".join(filter(None, (str(path), label, location(err["loc"]), _message(err))))
                    for err in exc.errors()
                )
                continue
            if config.name in sources:
                problems.append(f"{path}: {label}: also in {sources[config.name]}")
                continue
            sources[config.name] = path
            configs.append(config)
    if problems:
        raise FileProblems(problems)
    return Checked(configs=configs, sources=sources)


async def export_text(*, session: AsyncSession, fmt: str) -> str:
    distributions = list(await repository.list_all(session))
    return dump(service.export_document(distributions), fmt=fmt)


async def import_checked(
    *, session: AsyncSession, checked: Checked, prune: bool = False
) -> service.ImportReport:
    """Upsert the checked distributions in `session` (and with `prune`, delete the live ones the
    files do not name); the caller commits, or not for a dry run. FileProblems, nothing changed,
    when one breaks a rule of rules.py against the version stored under its name."""
    problems = []
    for config in checked.configs:
        existing = await repository.get_live_by_name(session, config.name)
        stored = None if existing is None else service.to_config(existing)
        problems += [
            f"{checked.sources[config.name]}: {config.name}: {location(tuple(problem['loc']))}: "
            f"{problem['message']}"
            for problem in rules.problems(config, stored=stored)
        ]
    if problems:
        raise FileProblems(problems)
    return await service.import_configs(session=session, configs=checked.configs, prune=prune)
