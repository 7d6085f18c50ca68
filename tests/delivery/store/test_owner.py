"""One owner per table: a statement that changes a table lives in the modules the owner map
names (docs/architecture.md, "Who writes which table"), and nowhere else.

The scan reads the source: SQL text (`INSERT INTO t`, `UPDATE t`, `DELETE FROM t`), ORM rows
created (`Model(...)`, `insert/update/delete(Model)`), and columns of `deliveries` assigned on a
variable that holds a delivery."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from app.delivery.models import Delivery
from app.models import Base

APP = Path(__file__).resolve().parents[3] / "app"

# table -> the modules (or packages) that may change it. Pruning old rows is retention's job
# for every table it prunes; the sandbox's emulators keep their own state, not these tables.
OWNERS: dict[str, tuple[str, ...]] = {
    "deliveries": ("app.delivery.store",),
    "attribute_state": ("app.delivery.store",),
    "braze_requests": ("app.delivery.store",),
    "braze_gate": ("app.delivery.gate",),
    "delivery_attempts": ("app.delivery.store",),
    "webhook_events": ("app.webhooks.group_commit", "app.delivery.store.retention"),
    # withdrawal records its batches' progress (withdrawn, and the mark cleared when done)
    # in each batch's own transaction; the services set the mark.
    "runs": (
        "app.runs.store",
        "app.runs.service",
        "app.delivery.store.retention",
        "app.delivery.store.withdrawal",
    ),
    "replays": (
        "app.ops.replay",
        "app.ops.replay_service",
        "app.ops.bulk_replay",
        "app.delivery.store.retention",
        "app.delivery.store.withdrawal",
    ),
    # queue_change records its batches' progress (queue_changed, and the mark cleared when
    # done) in each batch's own transaction; the service sets the mark.
    "distributions": ("app.distributions.service", "app.delivery.store.queue_change"),
    "console_sessions": ("app.console.sessions",),
}
_SQL = re.compile(
    r"\b(?:INSERT\s+INTO\s+([a-z_]+)|UPDATE\s+([a-z_]+)\s+(?:AS\s+\w+\s+)?SET|DELETE\s+FROM\s+([a-z_]+))\b",
    re.IGNORECASE,
)
_MODELS = {m.class_.__name__: m.class_.__tablename__ for m in Base.registry.mappers}
_DELIVERY_COLUMNS = {c.key for c in Delivery.__table__.columns}


def _module(path: Path) -> str:
    return ".".join(path.relative_to(APP.parent).with_suffix("").parts).removesuffix(".__init__")


def _owned_by(module: str, owners: tuple[str, ...]) -> bool:
    return any(module == o or module.startswith(o + ".") for o in owners)


def _writes(tree: ast.AST) -> list[tuple[str, int]]:
    """(table, line) for every write the module's source holds."""
    found: list[tuple[str, int]] = []
    # Only names imported from a models module are tables (app.delivery.gate has a BrazeGate too).
    models = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("models")
        for alias in node.names
        if alias.name in _MODELS
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += [
                ((m[1] or m[2] or m[3]).lower(), node.lineno) for m in _SQL.finditer(node.value)
            ]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in models:
                found.append((_MODELS[node.func.id], node.lineno))
            elif node.func.id in ("insert", "update", "delete") and node.args:
                target = node.args[0]
                if isinstance(target, ast.Name) and target.id in models:
                    found.append((_MODELS[target.id], node.lineno))
        elif isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if (
                    isinstance(t, ast.Attribute) and t.attr in _DELIVERY_COLUMNS
                    and isinstance(t.value, ast.Name) and "deliver" in t.value.id
                ):  # fmt: skip
                    found.append(("deliveries", node.lineno))
    return found


def _violations() -> list[str]:
    wrong: list[str] = []
    for path in sorted(APP.rglob("*.py")):
        module = _module(path)
        if module.startswith("app.sandbox") or module.endswith(".models"):
            continue  # the emulators' own state; the models declare the tables
        for table, line in _writes(ast.parse(path.read_text(), str(path))):
            owners = OWNERS.get(table)
            if owners is not None and not _owned_by(module, owners):
                wrong.append(f"{module}:{line} writes {table} (owned by {', '.join(owners)})")
    return wrong


def test_every_table_is_written_only_by_its_owners() -> None:
    assert _violations() == []


def test_the_owner_map_names_every_table() -> None:
    assert set(OWNERS) == set(Base.metadata.tables) - {"alembic_version"}


_IMPORT = "from app.delivery.models import Delivery\n"


@pytest.mark.parametrize(
    ("source", "table"),
    [
        ('q = "UPDATE deliveries SET status = $1"', "deliveries"),
        (
            'q = """\n  insert into delivery_attempts (delivery_id) VALUES (1)"""',
            "delivery_attempts",
        ),
        (_IMPORT + "session.add(Delivery(event_id=1))", "deliveries"),
        (_IMPORT + "stmt = update(Delivery).values(status='pending')", "deliveries"),
        ("delivery.status = 'pending'", "deliveries"),
    ],
)
def test_the_scan_sees_each_way_of_writing(source: str, table: str) -> None:
    assert table in [t for t, _ in _writes(ast.parse(source))]


def test_words_in_prose_are_not_writes() -> None:
    source = 'help_text = "create or update distributions by name"\nBrazeGate(pool=None)'
    assert _writes(ast.parse(source)) == []
