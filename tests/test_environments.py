"""pyproject.toml, environment.yml and binder/environment.yml must not drift apart."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
#: conda-forge names that differ from the PyPI ones.
CONDA_TO_PYPI = {"pytorch-cpu": "torch", "pytorch": "torch"}
#: conda-only tooling, not Python dependencies of ewclab.
CONDA_ONLY = {"python", "pip"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~; \[]", requirement.strip(), maxsplit=1)[0].lower()


def _pyproject() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = {k: {_name(r) for r in v} for k, v in project["optional-dependencies"].items()}
    return {_name(r) for r in project["dependencies"]}, extras


def _conda(path: Path) -> tuple[set[str], dict]:
    env = yaml.safe_load(path.read_text())
    names = set()
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            name = _name(dep)
            names.add(CONDA_TO_PYPI.get(name, name))
    return names - CONDA_ONLY, env


def test_conda_environments_match_pyproject() -> None:
    runtime, extras = _pyproject()
    wanted = runtime | extras["lab"] | {"nbval"}
    for path in (ROOT / "environment.yml", ROOT / "binder" / "environment.yml"):
        names, env = _conda(path)
        assert names == wanted, f"{path.name}: missing {wanted - names}, extra {names - wanted}"
        assert env["channels"] == ["conda-forge"], path
        pythons = [d for d in env["dependencies"] if isinstance(d, str) and _name(d) == "python"]
        assert pythons and re.fullmatch(r"python=3\.\d+", pythons[0]), "pin Python's minor version"
        assert any(isinstance(d, str) and _name(d) == "pytorch-cpu" for d in env["dependencies"])


def test_root_environment_installs_ewclab_and_binder_postbuild_does() -> None:
    _, env = _conda(ROOT / "environment.yml")
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip == ["-e ."]
    post = (ROOT / "binder" / "postBuild").read_text()
    assert post.startswith("#!/usr/bin/env bash") and "\nset -e\n" in post
    assert "pip install --no-deps -e ." in post


def test_binder_start_runs_torch_on_one_thread_then_the_session() -> None:
    """Binder's container sees every host core but gets about one CPU."""
    start = ROOT / "binder" / "start"
    text = start.read_text()
    assert start.stat().st_mode & 0o111, "binder/start must be executable"
    assert text.startswith("#!/usr/bin/env bash") and "OMP_NUM_THREADS=1" in text
    assert text.rstrip().endswith('exec "$@"')


def test_binder_gets_the_lab_settings_of_make_lab() -> None:
    """Binder serves the repository as is (its checkout is disposable, so no working copy),
    with make lab's server config (idle-kernel culling) and JupyterLab setting overrides."""
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_CONFIG_PATH"}
    done = subprocess.run([str(ROOT / "binder" / "start"), "env"], env=env, cwd="/",
                          capture_output=True, text=True, check=True)  # fmt: skip
    seen = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    assert seen["JUPYTER_CONFIG_PATH"] == str(ROOT / "lab")
    assert seen["OMP_NUM_THREADS"] == "1"
    assert (ROOT / "lab" / "jupyter_server_config.json").is_file()
    post = (ROOT / "binder" / "postBuild").read_text()
    assert 'cp lab/overrides.json "$settings/overrides.d/ewclab.json"' in post
    assert "get_app_dir()" in post


def test_pyproject_has_lower_bounds_only() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    for requirement in requirements:
        spec = requirement.split(";")[0]
        assert "<" not in spec and "==" not in spec, f"upper pin in {requirement!r}"
    assert project["requires-python"] == ">=3.10"
