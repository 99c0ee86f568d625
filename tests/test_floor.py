"""``make test-floor`` tests the floor that pyproject.toml declares: it installs a release of
the floor's own torch and torchvision (not a newer one), and every file that states the
floor states the same one."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
FLOORED = ("torch", "torchvision")
#: conda-forge's name for each PyPI name in FLOORED.
CONDA = {"torch": "pytorch-cpu", "torchvision": "torchvision"}


def _floors(requirements: list[str], names: dict[str, str]) -> dict[str, Version]:
    """``{pypi name: version}`` of each ``name>=version`` in ``requirements``."""
    found = {}
    for pypi, name in names.items():
        (floor,) = [r for r in requirements if re.fullmatch(rf"{name}>=[\d.]+", r.strip())]
        found[pypi] = Version(floor.split(">=")[1])
    return found


def _make_floor_commands() -> list[list[str]]:
    """The commands ``make test-floor`` runs, as make expands them (``-B``: all of them)."""
    make = ["make", "-n", "-B", "--no-print-directory", "-C", str(ROOT), "test-floor"]
    dry = subprocess.run(make, capture_output=True, text=True, check=True).stdout
    return [shlex.split(line) for line in dry.splitlines() if line.strip()]


def test_the_floor_target_installs_a_release_of_the_declared_floor() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = _floors(dependencies, {n: n for n in FLOORED})
    (install,) = [c for c in _make_floor_commands() if "install" in c and "-e" in c]
    pins = dict(w.split("==") for w in install if "==" in w)
    assert set(pins) == set(FLOORED), install
    for name, floor in floors.items():
        pin = Version(pins[name])
        assert pin >= floor and pin.release[:2] == floor.release[:2], (
            f"make test-floor installs {name} {pin}, but pyproject.toml's floor is {floor}"
        )


def test_the_floor_target_runs_existing_tests_in_its_own_venv() -> None:
    commands = _make_floor_commands()
    (pytest,) = [c for c in commands if "pytest" in c]
    files = [w for w in pytest if w.startswith("tests/")]
    assert len(files) >= 5 and all((ROOT / f).is_file() for f in files), files
    assert "tests/test_ewc.py" in files and "tests/test_fisher.py" in files
    python = next(w for w in pytest if w.endswith("/bin/python"))
    venv = python.removesuffix("/bin/python")
    assert venv != ".venv" and ["-m", "venv", venv] == commands[0][1:], commands[0]


def test_conda_environments_state_the_same_floor() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = _floors(dependencies, {n: n for n in FLOORED})
    for path in (ROOT / "environment.yml", ROOT / "binder" / "environment.yml"):
        conda = [d for d in yaml.safe_load(path.read_text())["dependencies"] if isinstance(d, str)]
        assert _floors(conda, CONDA) == floors, path
