"""``ewclab demo``: the lesson holds with the defaults, outputs, and usage errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from ewclab.cli import main
from ewclab.experiment import TaskACache
from ewclab.idx import write_idx
from ewclab.sources import FILES, TORCHVISION_FOLDER

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _matrix(path) -> list[list[float]]:
    return json.loads(path.read_text())["accuracy_matrix"]


def test_default_demo_teaches_the_lesson(tmp_path, capsys):
    """Without EWC task A collapses after task B; with --ewc it is kept, B still learned."""
    cache = TaskACache()
    plain, ewc = tmp_path / "plain.json", tmp_path / "ewc.json"
    assert main(["demo", "--quiet", "--json", str(plain)], cache=cache) == 0
    table = capsys.readouterr().out
    assert main(["demo", "--ewc", "--quiet", "--json", str(ewc)], cache=cache) == 0
    assert cache.hits == 1  # task A trained once for both runs
    R, E = _matrix(plain), _matrix(ewc)
    assert R[0][0] == E[0][0]
    assert R[0][0] - R[1][0] >= 0.30, f"no forgetting without EWC: {R}"
    assert E[0][0] - E[1][0] <= 0.10, f"EWC did not keep task A: {E}"
    assert E[1][1] >= R[1][1] - 0.10, f"EWC gave task B away: {E} vs {R}"
    assert "task A (mnist) after B" in table and f"{100 * R[1][0]:.1f}%" in table
    assert "(drop " in table and "never learned" not in table
    settings = json.loads(ewc.read_text())["settings"]
    assert settings["method"] == "ewc" and settings["lam"] > 0


def test_small_run_writes_plot_and_json(tmp_path, capsys):
    png, out = tmp_path / "curves.png", tmp_path / "run.json"
    argv = ["demo", "-e", "0.05", "--width", "8", "--tasks", "permuted:3", "--quiet",
            "--ewc", "--lambda", "5", "--plot", str(png), "--json", str(out)]
    assert main(argv) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    d = json.loads(out.read_text())
    assert len(d["accuracy_matrix"]) == 3 and all(len(r) == 3 for r in d["accuracy_matrix"])
    assert d["settings"]["lam"] == 5.0 and d["settings"]["tasks"][0] == "mnist-perm1"
    assert "backward transfer" in capsys.readouterr().out


@pytest.mark.parametrize("option, threads", [([], 1), (["--threads", "2"], 2)])
def test_threads_are_set_for_the_run_and_restored(monkeypatch, option, threads):
    """One thread unless told otherwise (faster on a shared CPU, RESULTS.md section 8)."""
    before, seen = torch.get_num_threads(), []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: seen.append(n) or real(n))
    assert main(["demo", "-e", "0.02", "--width", "8", "--quiet", *option]) == 0
    assert seen == [threads, before] and torch.get_num_threads() == before


def test_divergence_is_reported_without_traceback(capsys):
    """A learning rate that makes plain SGD blow up (no bound predicts it): exit 1."""
    argv = ["demo", "-e", "0.2", "--width", "8", "--quiet", "--lr", "1e30"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "diverged" in err and "Traceback" not in err


def test_task_never_learned_is_said_plainly(capsys):
    """A task A left near chance is reported as never learned, not as a small 'drop'."""
    argv = ["demo", "-e", "0.05", "--width", "8", "--lr", "1e-9", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "task A (mnist) was never learned" in out and "(drop " not in out
    assert "near chance (10.0%)" in out


def test_json_dash_writes_json_to_stdout_and_the_table_to_stderr(capsys):
    argv = ["demo", "-e", "0.05", "--width", "8", "--quiet", "--json", "-"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    d = json.loads(captured.out)  # nothing but the JSON on stdout
    assert d["tasks"] == ["mnist", "fashion-mnist"] and len(d["accuracy_matrix"]) == 2
    assert "test accuracy" in captured.err and "task A (mnist) after B" in captured.err


def test_width_scales_testnet(capsys):
    argv = ["demo", "--model", "testnet", "--width", "0.5", "-e", "0.05", "--quiet", "--json", "-"]
    assert main(argv) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["settings"]["width"] == 0.5 and d["settings"]["model"] == "testnet"


def test_defaults_come_from_the_settings_table(tmp_path, monkeypatch):
    """λ, lr and epochs follow settings.defaults for --tasks/--model/method, not the demo's."""
    import ewclab.experiment
    from ewclab.settings import defaults

    seen = {}

    def fake_run_plan(p, **kwargs):
        seen["plan"] = p
        raise KeyboardInterrupt  # stop before any training

    monkeypatch.setattr(ewclab.experiment, "run_plan", fake_run_plan)
    assert main(["demo", "--tasks", "fashion->mnist", "--ewc", "--quiet"]) == 130
    row = defaults("fashion->mnist", "mlp", "ewc")
    p = seen["plan"]
    assert (p.lam, p.lr, p.epochs[0]) == (row.lam, row.lr, row.epochs)
    assert row.lam != defaults("mnist->fashion", "mlp", "ewc").lam


def test_lambda_past_the_stability_bound_is_refused_before_task_b(capsys, monkeypatch):
    """λ 2000 on fashion->mnist breaks lr·λ·max F < 3.8: one line, exit 1, B never trained."""
    import ewclab.steps

    steps = []
    real = ewclab.steps.train_on_task

    def counting(model, name, *args, **kwargs):
        steps.append(name)
        return real(model, name, *args, **kwargs)

    monkeypatch.setattr(ewclab.steps, "train_on_task", counting)
    argv = ["demo", "--tasks", "fashion->mnist", "--ewc", "--lambda", "2000", "-e", "1",
            "--quiet"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert steps == ["fashion-mnist"]  # task A trained, task B refused before its first step
    assert "will make SGD diverge" in err and "--lambda" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_largest_seed_runs(capsys):
    assert main(["demo", "-e", "0.02", "--width", "8", "--quiet", "--seed", str(2**64 - 1)]) == 0


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["demo", "--tasks", "mnist"],
        ["demo", "--tasks", "permuted:1"],
        ["demo", "--tasks", "fashion"],
        ["demo", "--seed", "18446744073709551616"],
        ["demo", "--model", "resnet"],
        ["demo", "-e", "0"],
        ["demo", "-e", "many"],
        ["demo", "--epochs-b", "-2"],
        ["demo", "--ewc", "--lambda", "-1"],
        ["demo", "--lambda", "5"],
        ["demo", "--ewc", "--method", "l2"],
        ["demo", "--tasks", "cifar"],
        ["demo", "--fisher", "kfac"],
        ["demo", "--batch-size", "1.5"],
        ["demo", "--model", "mlp", "--width", "2.5"],
        ["demo", "--full-data", "/nonexistent/ewclab-data"],
        ["demo", "--seed", "-1"],
        ["demo", "--threads", "0"],
        ["demo", "--seed", "1.5"],
        ["demo", "--plot", "curves.notaformat"],
    ],
)
def test_bad_options_are_usage_errors(argv, capsys, tmp_path, monkeypatch):
    """Exit 2 with a usage line, no traceback, and nothing changed: no file written, the
    shared task-A cache, torch's threads and its global generator as they were."""
    monkeypatch.chdir(tmp_path)
    cache, rng, threads = TaskACache(), torch.random.get_rng_state(), torch.get_num_threads()
    with pytest.raises(SystemExit) as exc:
        main(argv, cache=cache)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == [] and len(cache) == 0 and cache.misses == 0
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_unwritable_outputs_are_usage_errors_before_training(tmp_path, option, capsys):
    for path in (tmp_path / "missing" / "out.png", tmp_path):
        with pytest.raises(SystemExit) as exc:
            main(["demo", option, str(path)])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert option in err and "Traceback" not in err


def test_full_data_root_is_used(tmp_path):
    """--full-data ROOT reads the datasets found there (tiny ones here), not the bundled."""
    rng = np.random.default_rng(0)
    for folder in TORCHVISION_FOLDER.values():
        raw = tmp_path / folder / "raw"
        raw.mkdir(parents=True)
        for split, n in (("train", 40), ("test", 20)):
            write_idx(raw / FILES[split, "images"], rng.integers(0, 256, (n, 28, 28), np.uint8))
            write_idx(raw / FILES[split, "labels"], rng.integers(0, 10, n, np.uint8))
    out = tmp_path / "run.json"
    argv = ["demo", "--full-data", str(tmp_path), "-e", "1", "--batch-size", "20",
            "--width", "8", "--quiet", "--json", str(out)]
    assert main(argv) == 0
    d = json.loads(out.read_text())
    assert d["boundaries"] == [0, 2] and d["steps"][-1] == 4  # 40 samples / batch 20


def test_help_explains_epochs(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "passes over each task's training set" in text and "partial_fit" in text


def test_python_m_ewclab_usage_error():
    proc = subprocess.run([sys.executable, "-m", "ewclab", "demo", "--no-such-option"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "usage:" in proc.stderr and "Traceback" not in proc.stderr
