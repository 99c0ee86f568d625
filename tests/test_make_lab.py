"""`make lab` as a classroom gets it: started for real (no browser), then asked over its API.

One server, started by the Makefile's own recipe with temporary Jupyter folders, shows that
it starts (as root too: containers, classroom servers), serves a copy of the lessons rather
than the committed notebooks, hands JupyterLab the news-off defaults of lab/overrides.json,
culls idle kernels, and starts kernels with one torch thread.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from proctree import descendants

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)  # the venv running the tests is the one `make` would build
START_S, STOP_S = 120.0, 15.0
CULLING = "Culling kernels with idle durations > 1200 seconds at 60 second intervals"
NEWS = "@jupyterlab/apputils-extension:notification"

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc (Linux)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _make(*args: str, **env: str) -> list[str]:
    """``make`` on this repo with this venv; its install step is assumed done (``-o``)."""
    return ["make", "--no-print-directory", "-C", str(ROOT), "-o", f"{VENV}/.lab-installed",
            f"VENV={VENV}", *args]  # fmt: skip


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class Server:
    def __init__(self, url: str, token: str, process: subprocess.Popen, log: Path):
        self.url, self.token, self.process, self.log = url, token, process, log

    def get(self, path: str, method: str = "GET", body: dict | None = None) -> dict | list:
        data = json.dumps(body).encode() if body else b"" if method == "POST" else None
        request = urllib.request.Request(
            f"{self.url}/{path}", method=method, data=data,
            headers={"Authorization": f"token {self.token}"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else {}

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"make lab exited:\n{self.log.read_text()}"
            try:
                self.get("api/status")
                return
            except OSError:
                time.sleep(0.5)  # polling a port: the server's readiness is the signal
        raise TimeoutError(f"make lab not serving after {START_S:.0f} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        pids = descendants(self.process.pid)
        try:
            self.get("api/shutdown", method="POST")
            self.process.wait(timeout=STOP_S)
        except Exception:  # noqa: BLE001 - fall through to signals
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_S)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("make-lab")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JUPYTER", "OMP_", "MKL_", "IPYTHON"))}  # fmt: skip
    for key, name in [
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("JUPYTERLAB_SETTINGS_DIR", "settings"),
        ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
        ("IPYTHONDIR", "ipython"),
    ]:
        env[key] = str(home / name)  # fmt: skip
    port, token = _free_port(), secrets.token_hex(16)
    args = (f"--no-browser --ip=127.0.0.1 --port={port} --ServerApp.port_retries=0 "
            f"--IdentityProvider.token={token} --ServerApp.terminals_enabled=False")  # fmt: skip
    command = _make("lab", f"LAB_NOTEBOOKS={home / 'lessons'}", f"JUPYTER_ARGS={args}")
    log = home / "make-lab.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=sink,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    lab = Server(f"http://127.0.0.1:{port}", token, process, log)
    try:
        lab.wait_ready()
        yield lab, home / "lessons"
    finally:
        lab.stop()


def test_make_lab_serves_a_copy_of_the_lessons(server) -> None:
    lab, lessons = server
    committed = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    served = sorted(item["name"] for item in lab.get("api/contents")["content"])
    assert committed and set(committed) <= set(served), served
    assert sorted(p.name for p in lessons.glob("*.ipynb")) == committed
    ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q",
                              "my-notebooks/01_catastrophic_forgetting.ipynb"])  # fmt: skip
    assert ignored.returncode == 0, "make lab's default copy (my-notebooks/) must be git-ignored"


def test_jupyterlab_gets_the_news_off_defaults(server) -> None:
    lab, _ = server
    shipped = json.loads((ROOT / "lab" / "overrides.json").read_text())
    assert shipped[NEWS] == {"fetchNews": "false", "checkForUpdates": False}
    for plugin, values in shipped.items():
        schema = lab.get(f"lab/api/settings/{plugin}")["schema"]
        for key, value in values.items():
            assert schema["properties"][key]["default"] == value, (plugin, key)


def test_kernels_get_one_torch_thread_and_idle_ones_are_culled(server) -> None:
    lab, lessons = server
    lesson = {
        "path": "01_catastrophic_forgetting.ipynb",
        "type": "notebook",
        "name": "",
        "kernel": {"name": "python3"},
    }  # a kernel as opening a lesson starts it
    session = lab.get("api/sessions", method="POST", body=lesson)
    try:
        pids = [p for p in descendants(lab.process.pid) if "ipykernel" in _cmdline(p)]
        assert len(pids) == 1, [_cmdline(p) for p in descendants(lab.process.pid)]
        env = _environ(pids[0])
        assert env.get("OMP_NUM_THREADS") == "1" and env.get("MKL_NUM_THREADS") == "1"
        assert Path(os.readlink(f"/proc/{pids[0]}/cwd")) == lessons
        log = lab.log.read_text()
        assert CULLING in log and "even with connected clients" in log, log[-3000:]
    finally:
        lab.get(f"api/sessions/{session['id']}", method="DELETE")


def test_make_lab_allows_root_only_as_root() -> None:
    done = subprocess.run(_make("-n", "lab"), capture_output=True, text=True, check=True)
    assert ("--allow-root" in done.stdout) == (os.geteuid() == 0), done.stdout


def test_make_lab_fresh_recopies_and_keeps_the_old_copy(tmp_path: Path) -> None:
    copy = tmp_path / "lessons"
    subprocess.run(_make("lab-fresh", f"LAB_NOTEBOOKS={copy}"), capture_output=True, check=True)
    lesson = copy / "01_catastrophic_forgetting.ipynb"
    committed = (ROOT / "notebooks" / lesson.name).read_bytes()
    assert lesson.read_bytes() == committed
    lesson.write_text("a student's edits")
    subprocess.run(_make("lab-fresh", f"LAB_NOTEBOOKS={copy}"), capture_output=True, check=True)
    assert lesson.read_bytes() == committed
    assert (tmp_path / "lessons.old" / lesson.name).read_text() == "a student's edits"
