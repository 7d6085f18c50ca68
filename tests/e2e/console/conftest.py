"""Browser tests of the console: one `voucher-relay serve` (with its worker, Braze an
emulator) and one headless Chromium for all of them, a fresh browser context per test.

Chromium is Debian's (`apt-get install -y chromium`), launched by its path: Playwright never
downloads a browser. Without one the tests are skipped, saying so. CONSOLE_SCREENSHOTS=1
writes each page's screenshot into docs/console/ (see docs/console.md).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import URL

from app.sandbox.braze.emulator import create_emulator
from tests.e2e.processes import E2E_BRAZE_KEY, REPO, free_port, relay_env
from tests.e2e.servers import serve_app_in_thread
from tests.postgres import scratch_database

pytestmark = pytest.mark.e2e

WRITE = "console-write-token"
READ = "console-read-token"
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
SCREENSHOTS = REPO / "docs" / "console"
AXE = Path(__file__).with_name("axe.min.js")


def chromium_path() -> str | None:
    for path in (os.environ.get("CHROMIUM_PATH"), *CHROMIUM_PATHS):
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    return shutil.which("chromium")


@dataclass
class Served:
    base_url: str
    database: str

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {WRITE}"}, timeout=10
        )

    def sql(self, statement: str, *args: Any) -> list[asyncpg.Record]:
        async def run() -> list[asyncpg.Record]:
            connection = await asyncpg.connect(self.database)
            try:
                return list(await connection.fetch(statement, *args))
            finally:
                await connection.close()

        # In a thread of its own: Playwright's sync API keeps an event loop in this one.
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, run()).result()


@pytest.fixture(scope="session")
def browser_path() -> str:
    path = chromium_path()
    if path is None:
        pytest.skip(
            "no Chromium installed: `apt-get install -y chromium` (or set CHROMIUM_PATH) to run "
            "the console's browser tests"
        )
    return path


# Package scope: Playwright's sync API keeps an event loop in the main thread while it runs,
# and the suite's later tests call asyncio.run there; it must stop when these tests end.
@pytest.fixture(scope="package")
def served(browser_path: str, server_url: URL) -> Iterator[Served]:
    """`voucher-relay serve --migrate` on a scratch database, its log in a temporary file
    (a pipe nobody reads would fill and stall it)."""
    emulator = create_emulator(api_key=E2E_BRAZE_KEY)
    port = free_port()
    with (
        scratch_database(server_url, prefix="vr_console") as url,
        serve_app_in_thread(emulator) as braze_url,
        tempfile.TemporaryFile("w+") as log,
    ):
        database = url.set(drivername="postgresql").render_as_string(hide_password=False)
        env = relay_env(database, braze_url, port, WORKER_POLL_SECONDS="0.2")
        env["OPS_API_TOKENS"] = f"ops-team:write:{WRITE},support:read:{READ}"
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--migrate"], cwd=REPO, env=env,
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            _wait_ready(port, process, log)
            yield Served(f"http://127.0.0.1:{port}", database)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(port: int, process: subprocess.Popen[bytes], log: Any) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise AssertionError(f"serve exited with {process.returncode}:\n{log.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("serve not ready within 60 s")


@pytest.fixture(scope="package")
def browser(browser_path: str, served: Served) -> Iterator[Any]:
    """Started after `served` (and so stopped before it): Playwright's sync API keeps an event
    loop in this thread, where the database fixtures' asyncio.run would fail."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start.
        launched = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, served: Served) -> Iterator[Any]:
    """A fresh context (no cookies) at a laptop's screen size."""
    context = browser.new_context(base_url=served.base_url, viewport={"width": 1366, "height": 800})
    context.set_default_timeout(10_000)
    opened = context.new_page()
    yield opened
    context.close()


def sign_in(page: Any, token: str) -> None:
    """Sign in with the keyboard only: type the token, press Enter."""
    page.goto("/console/sign-in")
    page.get_by_label("Ops token").fill(token)
    page.keyboard.press("Enter")
    page.wait_for_url("**/console")


def screenshot(page: Any, name: str) -> None:
    """docs/console/<name>.png when CONSOLE_SCREENSHOTS=1 (committed; not on every run)."""
    if os.environ.get("CONSOLE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def serious_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it stands."""
    page.add_script_tag(content=AXE.read_text())
    result = page.evaluate("async () => await axe.run(document)")
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"] if v["impact"] in ("serious", "critical")
    ]  # fmt: skip
