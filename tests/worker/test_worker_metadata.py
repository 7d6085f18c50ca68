"""The worker child imports only what its lanes use: the ORM models they touch must still find
every table their foreign keys name (a bulk replay there once failed every batch on it)."""

from __future__ import annotations

import subprocess
import sys

from tests.e2e.processes import REPO

CHECK = """
from app.worker import process  # the worker process's root: what `serve`'s worker child imports
from app.db.base import Base
for table in Base.metadata.sorted_tables:
    for key in table.foreign_keys:
        key.column  # raises NoReferencedTableError when the target table is not loaded
print("ok")
"""


def test_the_worker_s_models_resolve_every_foreign_key() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.stdout.strip() == "ok", done.stderr[-2000:]
