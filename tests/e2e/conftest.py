"""Fixtures for the real-browser tests: a throw-away JupyterLab server and headless Chromium.

The server runs the current interpreter (so its kernels are this virtualenv's Python) on
127.0.0.1 with a random token, ``--no-browser`` and temporary Jupyter config/runtime/data/
settings/workspace folders. It serves a temporary copy of ``notebooks/``, so nothing a test
does rewrites a committed notebook. Every wait is bounded and the teardown stops the server,
its kernels and the browser whatever happened.

Chromium is Debian's (``apt-get install -y chromium``), driven by Playwright for Python (in
the ``test`` extra); no browser download is needed. Without them the tests are skipped with
the reason, except under CI (``CI=true``) or with ``EWCLAB_E2E=require`` (set by ``.ci/run``),
where a missing browser is a failure: CI always runs these tests.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from proctree import descendants

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("EWCLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_HINT = (
    "install Chromium with `apt-get install -y chromium` and Playwright with "
    "`.venv/bin/pip install -e .[test]` (EWCLAB_CHROMIUM=/path/to/chromium picks another binary)"
)
SERVER_START_S = 90.0
SERVER_STOP_S = 15.0
ACTION_TIMEOUT_MS = 30_000
# JupyterLab settings that keep a closed-network test quiet: no news, no update check.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def e2e_required() -> bool:
    """True under CI or with ``EWCLAB_E2E=require``: then a missing browser fails the test."""
    ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return ci or os.environ.get("EWCLAB_E2E") == "require"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Keep each phase's report on the test item so fixtures can see whether it failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


def _missing(what: str) -> None:
    message = f"e2e browser test needs {what}; {INSTALL_HINT}"
    if e2e_required():
        pytest.fail(f"{message} (required here: CI or EWCLAB_E2E=require)", pytrace=False)
    pytest.skip(f"SKIPPED, NOT RUN: {message}")


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab server: where it listens and which folder it serves."""

    url: str
    token: str
    root: Path
    process: subprocess.Popen

    def tree_url(self, path: str) -> str:
        """The URL that opens ``path`` (relative to ``root``) in a fresh workspace."""
        return f"{self.url}/lab/tree/{path}?reset&token={self.token}"

    def api(self, path: str, method: str = "GET", timeout: float = 5.0) -> dict | list:
        """Call the server's REST API (``/api/<path>``) with the token; decoded JSON back."""
        request = urllib.request.Request(
            f"{self.url}/api/{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
            data=b"" if method == "POST" else None,
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _stop(lab: Lab) -> None:
    """Ask the server to shut down (it stops its kernels), then terminate, then kill."""
    children = descendants(lab.process.pid)  # before they are orphaned
    try:
        lab.api("shutdown", method="POST")
        lab.process.wait(timeout=SERVER_STOP_S)
    except Exception:  # noqa: BLE001 - any failure here falls through to signals
        pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if lab.process.poll() is not None:
            break
        os.killpg(lab.process.pid, sig)
        try:
            lab.process.wait(timeout=SERVER_STOP_S)
        except subprocess.TimeoutExpired:
            pass
    _kill(children + descendants(lab.process.pid))


def _wait_ready(lab: Lab, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if lab.process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited early:\n{log.read_text()[-3000:]}")
        try:
            lab.api("status", timeout=2.0)
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab not ready after {SERVER_START_S:.0f} s:\n{log.read_text()}")


def _lab_env(home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("JUPYTER")}
    env.pop("MPLBACKEND", None)  # let the kernel use the inline backend, as for a student
    dirs = {
        "JUPYTER_CONFIG_DIR": "config",
        "JUPYTER_DATA_DIR": "data",
        "JUPYTER_RUNTIME_DIR": "runtime",
        "JUPYTERLAB_SETTINGS_DIR": "settings",
        "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
        "IPYTHONDIR": "ipython",
    }
    for key, name in dirs.items():
        (home / name).mkdir(parents=True)
        env[key] = str(home / name)
    for name, settings in LAB_SETTINGS.items():
        path = home / "settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    return env


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """``artifacts/e2e/`` (git-ignored): screenshots and the server log of the last run."""
    folder = REPO / "artifacts" / "e2e"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Debian's headless Chromium under Playwright (skipped, or failed in CI, when absent)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python")
    if not os.access(CHROMIUM, os.X_OK):
        _missing(f"Chromium at {CHROMIUM}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def lab(browser, tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[Lab]:
    """A JupyterLab server on 127.0.0.1 serving a copy of ``notebooks/``; always shut down.

    It depends on ``browser`` so that no server starts when the browser is missing.
    """
    root = tmp_path_factory.mktemp("lab-root")
    if (REPO / "notebooks").is_dir():
        ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
        shutil.copytree(REPO / "notebooks", root / "notebooks", ignore=ignore)
    home = tmp_path_factory.mktemp("lab-home")
    port, token = _free_port(), secrets.token_hex(16)
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--ServerApp.terminals_enabled=False", "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]  # fmt: skip
    if os.geteuid() == 0:  # containers and CI runners
        command.append("--allow-root")
    log = home / "jupyter-server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=_lab_env(home),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Lab(f"http://127.0.0.1:{port}", token, root, process)
    try:
        _wait_ready(server, log)
        yield server
    finally:
        _stop(server)
        shutil.copy(log, artifacts / "jupyter-server.log")


@pytest.fixture
def page(browser, request: pytest.FixtureRequest, artifacts: Path) -> Iterator:
    """A fresh page; on failure its screenshot goes to ``artifacts/e2e/<test>-failure.png``."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        report = getattr(request.node, "report_call", None)
        try:
            if report is not None and report.failed:
                page.screenshot(path=artifacts / f"{request.node.name}-failure.png")
        finally:
            context.close()
