"""``ewclab sweep``: every λ's accuracy matrix, the JSON and the trade-off plot, defaults,
and usage errors that change nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ewclab import experiment
from ewclab.cli import main
from ewclab.experiment import TaskACache, sweep
from ewclab.settings import defaults
from ewclab.tradeoff import lam_grid

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_json_and_plot_hold_every_lambda(tmp_path, capsys):
    cache = TaskACache()
    out, png = tmp_path / "sweep.json", tmp_path / "tradeoff.png"
    argv = ["sweep", "--lambdas", "0,100,1000", "-e", "0.25", "--quiet", "--json", str(out),
            "--plot", str(png)]
    assert main(argv, cache=cache) == 0
    table = capsys.readouterr().out
    d = json.loads(out.read_text())
    assert d["lambdas"] == [0.0, 100.0, 1000.0] and d["method"] == "ewc"
    assert d["tasks"] == ["mnist", "fashion-mnist"]
    expected = sweep([0.0, 100.0, 1000.0], "mnist->fashion", epochs=0.25, cache=cache)
    assert len(d["accuracy_matrix"]) == 3
    for R, h in zip(d["accuracy_matrix"], expected, strict=True):
        np.testing.assert_allclose(R, h.accuracy_matrix, atol=0.005)
    assert cache.misses == 1  # task A trained once for the command and the check
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "mnist after fashion-mnist" in table
    assert f"{100 * d['accuracy_matrix'][2][1][0]:.1f}%" in table
    assert {p.name for p in tmp_path.iterdir()} == {"sweep.json", "tradeoff.png"}  # no temp


def test_json_dash_goes_to_stdout_and_the_table_to_stderr(capsys):
    assert main(["sweep", "--lambdas", "1", "--method", "l2", "-e", "0.1", "--quiet",
                 "--json", "-"]) == 0
    captured = capsys.readouterr()
    d = json.loads(captured.out)
    assert d["lambdas"] == [1.0] and d["method"] == "l2"
    assert "mnist after fashion-mnist" in captured.err


def test_every_option_at_its_default(monkeypatch, capsys):
    """No option given: the table's grid for EWC on the demo's tasks and model, its epochs
    and seed (the training itself is replaced here; the tests above train for real)."""
    seen = {}

    def fake_sweep(lams, tasks, model, method, **kwargs):
        seen.update(lams=lams, tasks=[t.name for t in tasks], model=model, method=method,
                    **kwargs)
        return sweep(lams, tasks, model, method, epochs=0.05, seed=kwargs["seed"])

    monkeypatch.setattr(experiment, "sweep", fake_sweep)
    assert main(["sweep", "--quiet"]) == 0
    row = defaults("mnist->fashion", "mlp", "ewc")
    assert seen["lams"] == lam_grid(row.lam) and seen["method"] == "ewc"
    assert seen["model"] == "mlp" and seen["tasks"] == ["mnist", "fashion-mnist"]
    assert list(seen["epochs"]) == [row.epochs, row.epochs] and seen["seed"] == row.seed


def test_a_lambda_past_the_stability_bound_is_one_line(capsys):
    assert main(["sweep", "--lambdas", "1,1e7", "-e", "0.1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ewclab sweep: λ = 1e+07: before training task 'fashion-mnist'")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [
    ["sweep", "--lambdas", ""],
    ["sweep", "--lambdas", "1,-2"],
    ["sweep", "--lambdas", "0,x"],
    ["sweep", "--lambdas", "10,10"],
    ["sweep", "--lambdas", "nan"],
    ["sweep", "--method", "sgd"],
    ["sweep", "--model", "resnet"],
    ["sweep", "--tasks", "cifar"],
    ["sweep", "--tasks", "permuted:1"],
    ["sweep", "-e", "0"],
    ["sweep", "--seed", "-1"],
    ["sweep", "--threads", "0"],
    ["sweep", "--plot", "curve.notaformat"],
    ["sweep", "--plot", "missing-folder/curve.png"],
    ["sweep", "--json", "missing-folder/out.json"],
])
def test_bad_options_are_usage_errors(argv, capsys, tmp_path, monkeypatch):
    """Exit 2 with a usage line, no traceback; no file written, the cache, torch's threads
    and its global generator as they were."""
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
