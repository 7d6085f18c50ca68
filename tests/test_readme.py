"""Docs that run: the README's sandbox and quick-start blocks, executed as written (on free
ports, in a copy of the repository), print what the README says they print; the README stays
short and links every page under docs/.

A block marked `<!-- run: NAME -->` runs to its end; `<!-- run: NAME (until Ctrl-C) -->` runs
until it has printed what `<!-- output: NAME -->` shows, and is then stopped as Ctrl-C stops it
in a terminal (SIGINT to its process group). In an output block `...` stands for anything.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import (
    REPO,
    free_port,
    postgres_pids,
    service_env,
    wait_no_postgres,
    wait_ready,
)

README = (REPO / "README.md").read_text()
BLOCK = re.compile(r"<!-- (run|output): ([\w-]+)( \(until Ctrl-C\))? -->\n```\w*\n(.*?)```", re.S)
RUN = {name: (code, bool(until)) for kind, name, until, code in BLOCK.findall(README)
       if kind == "run"}  # fmt: skip
OUTPUT = {name: text for kind, name, _, text in BLOCK.findall(README) if kind == "output"}
# The dependencies `make` checks before it runs anything (see the Makefile's STAMP).
MAKE_INPUTS = ("pyproject.toml", "requirements.lock", "requirements-dev.lock")


def test_the_readme_is_short_and_links_every_docs_page() -> None:
    assert len(README.splitlines()) < 250
    pages = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md"))
    assert pages and [p for p in pages if f"]({p})" not in README] == []


def test_the_readme_has_the_blocks_this_test_runs() -> None:
    assert set(RUN) == {"sandbox", "sandbox-try", "quickstart", "quickstart-try"}
    assert set(OUTPUT) == set(RUN)
    assert RUN["sandbox"] == ("make sandbox\n", True)


def test_docs_pages_link_only_to_files_that_exist() -> None:
    for page in [REPO / "README.md", *(REPO / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not target.startswith(("http://", "https://")):
                assert (page.parent / target).exists(), f"{page.name}: {target}"


def matches(expected: str, printed: str) -> bool:
    """Whether `printed` holds the expected lines in order (`...` standing for anything);
    runs of spaces count as one, and lines may wrap differently (JSON logs are one line)."""

    def squeeze(text: str) -> str:
        return re.sub(r"[ \t]+", " ", text)

    parts = [re.escape(squeeze(line.strip())).replace(re.escape("..."), ".*?")
             for line in expected.strip().splitlines() if line.strip()]  # fmt: skip
    return re.search(".*?".join(parts), squeeze(printed), flags=re.S) is not None


def test_an_output_block_matches_in_order_with_wildcards() -> None:
    assert matches("a ... c\nd", "xx a  b c\nzz\nd")
    assert not matches("d\na", "a\nd")
    assert not matches("a b", "a c")


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[Path]:
    """The repository's files (as git sees them, ignored ones left out) with their times, and
    its .venv: `make` then installs nothing and a fresh clone's first steps run as written."""
    stamp = REPO / ".venv" / ".installed"
    newest = max((REPO / name).stat().st_mtime for name in MAKE_INPUTS)
    if not stamp.exists() or stamp.stat().st_mtime < newest:
        pytest.fail(
            ".venv is older than the dependency files: run `make lint` first (make test does)"
        )
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    root = tmp_path / "voucher-relay"
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    (root / ".venv").symlink_to(REPO / ".venv")
    yield root
    for data in (root / ".data", root / ".sandbox"):
        for pid in postgres_pids(data / "postgres"):
            os.kill(pid, signal.SIGKILL)


def _on_ports(text: str, ports: dict[str, int]) -> str:
    for written, free in ports.items():
        text = text.replace(f":{written}", f":{free}")
    return text


def _start(code: str, root: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["bash", "-c", code], cwd=root, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, process_group=0,
    )  # fmt: skip


def _read_until(process: subprocess.Popen[str], expected: str) -> str:
    """What the block prints, up to the point where it holds `expected` (the block itself
    bounds its waits: the sandbox gives up after its own timeouts)."""
    assert process.stdout is not None
    printed = ""
    while not matches(expected, printed):
        line = process.stdout.readline()
        assert line, (
            f"the block stopped ({process.wait()}) before printing:\n{expected}\n---\n{printed}"
        )
        printed += line
    return printed


def _ctrl_c(process: subprocess.Popen[str]) -> str:
    os.killpg(process.pid, signal.SIGINT)
    try:
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return rest


def _run(code: str, root: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        ["bash", "-e", "-c", code], cwd=root, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _nothing_left(root: Path, data: str, ports: dict[str, int]) -> None:
    assert wait_no_postgres(root / data / "postgres") == [], "Ctrl-C left Postgres running"
    for port in ports.values():
        with httpx.Client() as client, pytest.raises(httpx.ConnectError):
            client.get(f"http://127.0.0.1:{port}/", timeout=2)


@pytest.mark.e2e
def test_the_sandbox_blocks_run_as_written_and_print_what_the_readme_says(
    checkout: Path,
) -> None:
    ports = {"8000": free_port(), "9000": free_port(), "9001": free_port()}
    env = service_env(
        PORT=str(ports["8000"]),
        SANDBOX_FLAGS=f"--braze-port {ports['9000']} --voucherify-port {ports['9001']}",
    )
    sandbox = _start(RUN["sandbox"][0], checkout, env)
    try:
        printed = _read_until(sandbox, _on_ports(OUTPUT["sandbox"], ports))
        tried = _run(_on_ports(RUN["sandbox-try"][0], ports), checkout, env)
        assert matches(_on_ports(OUTPUT["sandbox-try"], ports), tried), tried
    finally:
        rest = _ctrl_c(sandbox)
    assert "sandbox stopped: relay, Postgres and emulators" in rest, printed + rest
    _nothing_left(checkout, ".sandbox", ports)


@pytest.mark.e2e
def test_the_quick_start_blocks_run_as_written_and_print_what_the_readme_says(
    checkout: Path,
) -> None:
    ports = {"8000": free_port()}
    env = service_env(PORT=str(ports["8000"]))
    service = _start(RUN["quickstart"][0], checkout, env)
    try:
        wait_ready(ports["8000"], service, timeout=180)  # a first start initialises Postgres
        tried = _run(_on_ports(RUN["quickstart-try"][0], ports), checkout, env)
        assert matches(_on_ports(OUTPUT["quickstart-try"], ports), tried), tried
    finally:
        printed = _ctrl_c(service)
    assert matches(_on_ports(OUTPUT["quickstart"], ports), printed), printed
    _nothing_left(checkout, ".data", ports)
