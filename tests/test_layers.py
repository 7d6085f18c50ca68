"""Every module of the product has a place in the layers contract (pyproject.toml), so that
`lint-imports` checks its imports: a module in no layer could import anything."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _layered() -> set[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    [layers] = [c["layers"] for c in config["contracts"] if c["id"] == "layers"]
    return {name for line in layers for name in re.split(r"\s*[|:]\s*", line.strip())}


def _modules() -> set[str]:
    """app's own modules and packages, and those of the one package split across layers."""
    found = set()
    for path in (REPO / "app").iterdir():
        if path.name.startswith("_") and path.name != "__main__.py":
            continue
        if path.suffix == ".py" or (path / "__init__.py").exists():
            found.add(f"app.{path.stem}")
    found.discard("app.metrics")  # its modules sit in two layers: the kernel and features
    found |= {
        f"app.metrics.{p.stem}" for p in (REPO / "app" / "metrics").glob("*.py")
        if not p.name.startswith("_")
    }  # fmt: skip
    return found


def test_every_module_sits_in_a_layer() -> None:
    assert sorted(_modules() - _layered()) == []


def test_the_layers_name_only_modules_that_exist() -> None:
    assert sorted(_layered() - _modules()) == []
