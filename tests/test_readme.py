"""The README's commands and examples are true: the fenced shell commands that are safe to
run here are run, every ``make`` target it names exists, its Python examples run, its links
resolve and the defaults it quotes are the package's.

Commands too slow or too far-reaching for a unit test (``make lab``, ``make test``,
``make demo``) are checked for existence here and run by CI (``.ci/run`` runs ``make test``).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ewclab.experiment import DEFAULTS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
#: Shell commands this test runs: help screens of the CLI, from the venv or the PATH.
SAFE = re.compile(r"^(\.venv/bin/)?(ewclab|python -m ewclab) demo --help$")
#: ``make <target>`` with optional VAR=value overrides: checked against the Makefile.
MAKE = re.compile(r'^make ([\w-]+)( [A-Z_]+=("[^"]*"|\S+))*$')
#: The CPU-only torch install: it needs download.pytorch.org, so it is checked, not run.
CPU_TORCH = [
    "python3 -m venv .venv",
    ".venv/bin/pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu",
]
#: What identifies each Python example; each has a test below that runs it.
API, DATA = "model.consolidate(", "task = load_task("
SETTINGS, BOUNDED = "from ewclab.settings import defaults", "epochs=1):"


def _blocks(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(README) if lang == language]


def _shell_commands() -> list[str]:
    lines = [line for block in _blocks("sh") for line in block.splitlines()]
    commands = [re.sub(r"\s+#.*$", "", line).strip() for line in lines]
    return [c for c in commands if c and not c.startswith("#")]


def _make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([\w-]+):", makefile, re.MULTILINE))


def _example(marker: str) -> str:
    (block,) = [b for b in _blocks("python") if marker in b]
    return block


def _python(code: str, tmp_path: Path) -> str:
    """Run ``code`` in a fresh interpreter (this one's environment) outside the repo."""
    env = {**os.environ, "MPLBACKEND": "Agg"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_every_python_example_is_run_here() -> None:
    blocks = _blocks("python")
    markers = (API, DATA, SETTINGS, BOUNDED)
    assert len(blocks) == len(markers) and all(_example(m) in blocks for m in markers)


def test_every_shell_command_is_run_here_or_a_make_target() -> None:
    commands = _shell_commands()
    assert "make lab" in commands and "make test" in commands
    unchecked = [c for c in commands if not (SAFE.match(c) or MAKE.match(c) or c in CPU_TORCH)]
    assert not unchecked, f"README commands nothing checks (run them here or in CI): {unchecked}"


@pytest.mark.parametrize("command", [c for c in _shell_commands() if SAFE.match(c)])
def test_safe_commands_run(command: str) -> None:
    bin_dir = Path(sys.executable).parent  # the README's .venv/bin, wherever this venv is
    words = command.removeprefix(".venv/bin/").split()
    if words[0] == "python":
        words[0] = sys.executable
    else:
        words[0] = str(bin_dir / words[0])
    done = subprocess.run(words, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ewclab demo"), done.stdout[:200]


def test_named_make_targets_exist() -> None:
    inline = re.findall(r"`make ([\w-]+)", README)
    fenced = [MAKE.match(c).group(1) for c in _shell_commands() if MAKE.match(c)]
    named = set(inline) | set(fenced)
    assert {"lab", "test", "demo"} <= named
    missing = named - _make_targets()
    assert not missing, f"README names make targets the Makefile lacks: {sorted(missing)}"


def test_cpu_torch_install_fits_the_makefile() -> None:
    """The CPU-only install goes into the venv ``make`` uses, with the packages ewclab needs."""
    commands = _shell_commands()
    assert [c for c in commands if c in CPU_TORCH] == CPU_TORCH  # in this order
    assert re.search(r"^VENV \?= \.venv$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    project = (ROOT / "pyproject.toml").read_text()
    for package in CPU_TORCH[1].split("install ")[1].split(" --")[0].split():
        assert f'"{package}>=' in project, f"{package} is not a dependency of ewclab"


def test_make_lab_options_reach_jupyter() -> None:
    """``make lab`` with the README's JUPYTER_ARGS runs jupyter lab with those arguments."""
    for command in [c for c in _shell_commands() if c.startswith("make lab JUPYTER_ARGS=")]:
        words = shlex.split(command)
        args = words[2].split("=", 1)[1]
        dry = subprocess.run(["make", "-n", "-C", str(ROOT), *words[1:]], capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
        (line,) = [line for line in dry.splitlines() if "jupyter lab" in line]
        assert line.rstrip().endswith(args), (command, line)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    """CI's tests are the README's test command, then the oldest-torch check the README's
    maintenance notes describe; nothing else."""
    script = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = [line.strip() for line in script if line.strip() and not line.startswith("#")]
    assert commands[-2:] == ["make test", "make test-floor"]
    assert not any(c.startswith("make ") for c in commands[:-2])
    readme = (ROOT / "README.md").read_text()
    assert "runs exactly `make test`, then `make test-floor`" in " ".join(readme.split())


def test_api_example_runs(tmp_path: Path) -> None:
    code = _example(API)
    assert "partial_fit(" in code and "score(" in code
    assert len(code.strip().splitlines()) <= 14, "keep the API example about ten lines"
    out = _python(code, tmp_path).splitlines()
    assert [line.split(":")[0] for line in out] == ["mnist", "fashion-mnist"], out
    for line in out:
        assert re.fullmatch(r"[\w-]+: \d{1,3}\.\d%", line), line


def test_data_example_runs(tmp_path: Path) -> None:
    out = _python(_example(DATA), tmp_path)
    assert out.strip() == "(4000, 28, 28) uint8 int64"


def test_settings_example_prints_the_table_row(tmp_path: Path) -> None:
    from ewclab.settings import defaults

    code = _example(SETTINGS)
    printed = re.search(r"print\(s\.lam, s\.lr, s\.epochs\)  # (.+)", code).group(1)
    first, why = _python(code, tmp_path).splitlines()
    row = defaults("fashion->mnist", "mlp", "ewc")
    assert first == printed == f"{row.lam} {row.lr} {row.epochs}"
    assert why == row.why
    assert f"Fashion-MNIST → MNIST needs {row.lam:g}" in README


def test_bounded_batchify_example_ends_after_one_epoch(tmp_path: Path) -> None:
    code = _example(BOUNDED)
    assert "63 batches" in code  # ceil(4000 / 64)
    (line,) = _python(code, tmp_path).splitlines()
    accuracy = float(re.fullmatch(r"mnist after one epoch: (\d{1,3}\.\d)%", line).group(1))
    assert accuracy > 50, line  # one pass of the MLP learns MNIST well past chance


def test_demo_output_matches_the_defaults() -> None:
    """The pasted ``make demo`` output is stdout's (tables, no settings line) and the
    settings lines quoted beside it are today's DEFAULTS (λ, epochs, model)."""
    (output,) = [b for b in _blocks("text") if "task A (mnist) after B" in b]
    assert " | " not in output, "the settings line goes to stderr, not into the stdout block"
    assert output.count("test accuracy") == 2
    epochs = f"epochs {DEFAULTS['epochs']}/{DEFAULTS['epochs']}"
    tasks = " -> ".join(("mnist", "fashion-mnist"))
    assert f"`{tasks} | {DEFAULTS['model']} | sgd | {epochs}`" in README
    assert f"`{tasks} | {DEFAULTS['model']} | ewc, λ = {DEFAULTS['lam']:g} | {epochs}`" in README


def test_demo_settings_line_goes_to_stderr_and_the_table_to_stdout() -> None:
    tiny = ["--epochs", "0.05", "--fisher-samples", "50", "--seed", "0"]
    done = subprocess.run(
        [sys.executable, "-m", "ewclab", "demo", *tiny], cwd=ROOT, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("test accuracy\n") and " | " not in done.stdout
    assert "mnist -> fashion-mnist | mlp | sgd | epochs 0.05/0.05" in done.stderr


def test_stated_default_lambda_is_the_package_default() -> None:
    assert f"λ = {DEFAULTS['lam']:g}" in README
    assert 'DEFAULTS["lam"]' in README
    assert f"ewc_lambda={DEFAULTS['lam']:g}" in _example(API)
    assert "penalty = λ/2 · Σ_i F_i (θ_i − θ*_i)²" in README


def test_links_and_screenshot_exist() -> None:
    targets = re.findall(r"\]\(([^)#]+)\)", README)
    local = [t for t in targets if not re.match(r"https?://", t)]
    assert "docs/playground.png" in local
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"
    png = (ROOT / "docs" / "playground.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
