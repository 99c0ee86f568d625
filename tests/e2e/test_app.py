"""The EWC playground as a Voilà app: ``make app`` started for real, driven in headless Chromium.

The server is the Makefile's own recipe (``make app``, its install step assumed done,
``--no-browser`` on a free port on 127.0.0.1, temporary Jupyter folders). The page must show
the playground with no code, render its widgets, and train: λ moved by keyboard, epochs set
to 1 so the first run (task A, its Fisher, task B) is short, Run clicked, and the result line
and the accuracy plot must both change. Every wait is on a signal (the server answering, an
element appearing, Run enabled again, the plot's rendering changing), never on a sleep.

The widget selectors are the ones ``test_lab.py`` relies on (see its docstring); its helpers
are reused here.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, SERVER_START_S, SERVER_STOP_S, _free_port, _kill, _lab_env
from proctree import descendants
from test_lab import (
    ERROR_TEXT,
    UNRENDERED,
    _button,
    _move_slider,
    _run_and_wait,
    _set_slider,
    _slider,
)

pytestmark = pytest.mark.e2e

VENV = Path(sys.prefix)  # the venv running the tests is the one `make` would build
OPEN_S = 120  # the page renders once the kernel has imported torch and built the widgets
RUN_S = 300  # one epoch of task A, its Fisher, one epoch of task B: ~10 s on an idle core
CODE = ".jp-CodeCell .jp-InputArea, .jp-CodeCell .jp-InputPrompt, .cm-editor, .CodeMirror"


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=2.0) as response:
        return response.status


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL, to make and Voilà; then whatever they started (kernels)."""
    children = descendants(process.pid)  # before they are orphaned
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            break
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=SERVER_STOP_S)
        except subprocess.TimeoutExpired:
            pass
    _kill(children + descendants(process.pid))


@pytest.fixture(scope="module")
def app(browser, tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[str]:
    """The URL of ``make app``'s Voilà server; always stopped. Needs ``browser`` first, so
    no server starts when the browser is missing."""
    home = tmp_path_factory.mktemp("app-home")
    env = {k: v for k, v in _lab_env(home).items() if not k.startswith(("OMP_", "MKL_"))}
    port = _free_port()
    args = "--no-browser --Voila.ip=127.0.0.1 --Voila.port_retries=0"
    command = ["make", "--no-print-directory", "-C", str(REPO), "-o", f"{VENV}/.lab-installed",
               f"VENV={VENV}", "app", f"APP_PORT={port}", f"APP_ARGS={args}"]  # fmt: skip
    log = home / "make-app.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:  # Voilà's own script answers once the server listens; it starts no kernel
            assert process.poll() is None, f"make app exited:\n{log.read_text()[-3000:]}"
            try:
                if _get(f"{url}/voila/static/voila.js") == 200:
                    break
            except (OSError, urllib.error.HTTPError):
                pass
            assert time.monotonic() < deadline, f"make app not serving:\n{log.read_text()}"
            time.sleep(0.5)  # polling a port: the server's readiness is the signal
        yield url
    finally:
        _stop(process)
        (artifacts / "make-app.log").write_bytes(log.read_bytes())


def test_voila_playground_trains_and_redraws(page, app: str, artifacts: Path) -> None:
    """The app shows the playground without code; λ, Run and the live plot work."""
    from playwright.sync_api import expect

    page.goto(app, timeout=OPEN_S * 1000)
    body = page.locator("body")
    page.locator(".ewclab-result").wait_for(timeout=OPEN_S * 1000)
    page.locator(".ewclab-plot").wait_for(state="attached", timeout=OPEN_S * 1000)
    run = _button(body, "Run")
    expect(run).to_be_enabled(timeout=OPEN_S * 1000)

    text = body.inner_text()
    assert page.locator(CODE).filter(visible=True).count() == 0, "the app shows code cells"
    assert "EWCPlayground" not in text and "from ewclab" not in text, "the app shows code"
    assert not ERROR_TEXT.search(text), f"an error on the page:\n{text[-2000:]}"
    assert not [u for u in UNRENDERED if u in text], f"widgets not rendered:\n{text[-2000:]}"

    _set_slider(_slider(body, "epochs A"), "1")
    _set_slider(_slider(body, "epochs B"), "1")
    lam = float(_move_slider(_slider(body, "λ")))
    result = _run_and_wait(body, RUN_S)
    page.screenshot(path=artifacts / "app-after-run.png")

    assert result.startswith("Run 1"), result
    shown = re.search(r"EWC λ = ([0-9.e+]+)", result)
    assert shown and abs(float(shown.group(1)) / lam - 1) < 0.01, f"λ {lam} not in {result!r}"
    assert re.search(r"→ \d+\.\d%", result), f"no accuracy after task B in {result!r}"
    images = page.locator(".ewclab-plot img").count()
    assert images == 1, f"the accuracy plot holds {images} images, not one redrawn image"
    assert not ERROR_TEXT.search(body.inner_text())
