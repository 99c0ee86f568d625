"""The playground and Fisher explorer, driven headlessly: set ``.value``, ``.click()``, wait."""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from ipywidgets import FloatLogSlider

from ewclab import plots
from ewclab.data import load_task
from ewclab.experiment import DEFAULTS, TaskACache, make_model
from ewclab.fisher import fisher_diagonal
from ewclab.widgets import EWCPlayground, FisherExplorer

PNG_MAGIC = b"\x89PNG"


def _small(name: str, n_train: int, n_test: int = 200):
    task = load_task(name)
    return replace(
        task, x_train=task.x_train[:n_train], y_train=task.y_train[:n_train],
        x_test=task.x_test[:n_test], y_test=task.y_test[:n_test],
    )  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine a second one makes steps ~30x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tasks():
    """Two small tasks: one epoch is 4 steps of 64."""
    return [_small("mnist", 256), _small("fashion-mnist", 256)]


@pytest.fixture(scope="module")
def long_tasks():
    """Two larger tasks for runs that must last long enough to be stopped."""
    return [_small("mnist", 2048), _small("fashion-mnist", 2048)]


def _playground(tasks, **options) -> EWCPlayground:
    settings = dict(epochs_a=1, epochs_b=1, fisher_samples=100) | options
    return EWCPlayground(tasks, **settings)


def _png(out) -> bytes:
    """The single PNG an Output widget shows."""
    assert len(out.outputs) == 1, f"expected one output, got {len(out.outputs)}"
    png = base64.b64decode(out.outputs[0]["data"]["image/png"])
    assert png.startswith(PNG_MAGIC)
    return png


def _click_run_and_wait(pg: EWCPlayground, timeout: float = 60) -> None:
    pg.run_button.click()
    assert pg.wait(timeout), "the run did not finish in time"
    assert pg.error is None, pg.result.value


def _wait_until(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _assert_idle(pg: EWCPlayground) -> None:
    assert not pg.running
    assert not pg.run_button.disabled
    assert pg.stop_button.disabled


def test_dom_contract(tasks):
    pg = _playground(tasks)
    assert isinstance(pg.lam_slider, FloatLogSlider) and "λ" in pg.lam_slider.description
    sliders = [c for box in pg.widget.children for c in getattr(box, "children", [box])
               if "λ" in getattr(c, "description", "") and "Slider" in type(c).__name__]
    assert sliders == [pg.lam_slider]
    assert (pg.run_button.description, pg.stop_button.description) == ("Run", "Stop")
    assert "ewclab-result" in pg.result._dom_classes
    assert "ewclab-plot" in pg.plot._dom_classes
    _assert_idle(pg)
    assert pg.lam_slider.value == pytest.approx(DEFAULTS["lam"])
    assert hasattr(pg, "_ipython_display_")


def test_run_trains_draws_and_reports(tasks):
    pg = _playground(tasks, epochs_a=2)
    pg.epochs_b.value = 1
    pg.lam_slider.value = 100.0
    before = pg.result.value
    _click_run_and_wait(pg)

    h = pg.history
    assert h.tasks == ["mnist", "fashion-mnist"]
    assert h.settings["method"] == "ewc" and h.settings["lam"] == pytest.approx(100.0)
    assert h.settings["epochs"] == [2, 1]
    assert not np.isnan(h.accuracy_matrix).any()
    assert len(h.steps) > 4 and h.steps[-1] == 8 + 4
    (row,) = pg.results
    R = h.accuracy_matrix
    assert row["method"] == "ewc" and row["lam"] == pytest.approx(100.0)
    assert (row["acc_a_before"], row["acc_a_after"], row["acc_b"]) == (R[0, 0], R[1, 0], R[1, 1])
    assert row["acc_a"] == row["acc_a_after"]
    assert (row["epochs_a"], row["epochs_b"], row["fisher_samples"]) == (2, 1, 100)
    plots.plot_tradeoff(pg.results)  # the results feed the trade-off plot as they are

    _png(pg.plot)
    assert pg.result.value != before
    assert "Run 1" in pg.result.value and "λ = 100" in pg.result.value
    assert f"{100 * R[1, 0]:.1f}%" in pg.result.value
    assert pg.progress.value == pg.progress.max == 12
    assert pg.progress.bar_style == "success"
    _assert_idle(pg)


def test_new_lam_reuses_task_a(tasks):
    cache = TaskACache()
    pg = _playground(tasks, cache=cache)
    _click_run_and_wait(pg)
    first_result, first_history = pg.result.value, pg.history
    assert (cache.hits, cache.misses) == (0, 1)

    pg.lam_slider.value = 10.0
    _click_run_and_wait(pg)
    assert (cache.hits, cache.misses) == (1, 1)
    assert pg.result.value != first_result
    a, b = pg.results
    assert b["lam"] == pytest.approx(10.0)
    assert b["acc_a_before"] == a["acc_a_before"]
    n = first_history.steps.index(first_history.boundaries[1]) + 1
    assert pg.history.steps[:n] == first_history.steps[:n]
    for t in pg.history.tasks:
        assert pg.history.accuracy[t][:n] == first_history.accuracy[t][:n]


def test_ewc_toggle_off_trains_plain_sgd(tasks):
    pg = _playground(tasks)
    pg.ewc_toggle.value = False
    assert pg.lam_slider.disabled and pg.lam == 0.0
    _click_run_and_wait(pg)
    assert pg.history.settings["method"] == "sgd" and pg.history.settings["lam"] == 0.0
    assert pg.results[0]["method"] == "sgd" and pg.results[0]["lam"] == 0.0
    assert "plain SGD" in pg.result.value
    pg.ewc_toggle.value = True
    assert not pg.lam_slider.disabled and pg.lam == pytest.approx(DEFAULTS["lam"])


def test_lam_zero_starts_with_ewc_off(tasks):
    pg = _playground(tasks, lam=0)
    assert not pg.ewc_toggle.value and pg.method == "sgd"
    assert pg.lam_slider.value == pytest.approx(DEFAULTS["lam"])


def test_stop_halts_quickly_and_run_while_running_is_a_no_op(long_tasks):
    pg = _playground(long_tasks, epochs_a=20, epochs_b=20, fisher_samples=100)
    pg.run_button.click()
    assert pg.run_button.disabled and not pg.stop_button.disabled
    thread = pg._thread
    _wait_until(lambda: pg.progress.value > 0)

    assert pg.run() is False
    pg.run_button.click()
    assert pg._thread is thread
    assert [t.name for t in threading.enumerate()].count("ewclab-run") == 1

    start = time.monotonic()
    pg.stop_button.click()
    assert pg.wait(5)
    assert time.monotonic() - start < 2.0
    assert "stopped" in pg.result.value
    assert pg.results == [] and pg.error is None
    assert np.isnan(pg.history.accuracy_matrix[-1]).all()
    assert pg.progress.bar_style == "warning"
    _assert_idle(pg)


def test_redraws_are_throttled(tasks, monkeypatch):
    draws: list[float] = []
    plot_accuracy = plots.plot_accuracy

    def counted(history, fig=None):
        draws.append(time.monotonic())
        return plot_accuracy(history, fig=fig)

    monkeypatch.setattr(plots, "plot_accuracy", counted)
    pg = _playground(tasks, epochs_a=5, epochs_b=5)
    _click_run_and_wait(pg)
    points = len(pg.history.steps)
    assert 2 <= len(draws) < points
    live = np.diff(draws[:-1])  # the last draw is the final one, whenever the run ends
    assert (live >= pg.redraw_every).all(), live
    _png(pg.plot)  # redraws replace the image, they never pile up


def test_worker_error_is_shown_and_buttons_recover(tasks, monkeypatch):
    def broken(history, fig=None):
        raise RuntimeError("cannot draw")

    monkeypatch.setattr(plots, "plot_accuracy", broken)
    pg = _playground(tasks)
    pg.run_button.click()
    assert pg.wait(60)
    assert isinstance(pg.error, RuntimeError)
    assert "failed" in pg.result.value and "cannot draw" in pg.result.value
    (log,) = pg.log.outputs
    assert log["name"] == "stderr" and "Traceback" in log["text"]
    assert pg.progress.bar_style == "danger"
    _assert_idle(pg)

    monkeypatch.undo()
    _click_run_and_wait(pg)
    assert len(pg.results) == 1 and "Run 2" in pg.result.value


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"tasks": "mnist->cifar"}, ValueError),
        ({"tasks": [1, 2]}, TypeError),
        ({"model": "resnet"}, ValueError),
        ({"lam": 1e7}, ValueError),
        ({"lam": -1.0}, ValueError),
        ({"epochs_a": 0}, ValueError),
        ({"epochs_b": 2.5}, TypeError),
        ({"epochs_a": 21}, ValueError),
        ({"lam": "big"}, TypeError),
        ({"fisher": "batch"}, ValueError),
        ({"fisher_samples": 0}, ValueError),
        ({"cache": {}}, TypeError),
    ],
)
def test_bad_settings_are_rejected(options, error):
    with pytest.raises(error):
        EWCPlayground(**options)


def test_fisher_explorer_switches_layers(tasks):
    model = make_model("mlp", width=16, seed=0)
    X, y = tasks[0].x_train[:64, None], tasks[0].y_train[:64]
    fisher = fisher_diagonal(model, X, y)
    fisher = {name: fisher[name] for name in reversed(list(fisher))}
    explorer = FisherExplorer(fisher, model)
    assert list(explorer.layer.options) == [n for n, _ in model.named_parameters()]
    assert "ewclab-fisher" in explorer.out._dom_classes
    first = _png(explorer.out)
    explorer.layer.value = "net.3.weight"
    assert _png(explorer.out) != first


def test_fisher_explorer_rejects_bad_input():
    with pytest.raises(TypeError):
        FisherExplorer({})
    with pytest.raises(TypeError):
        FisherExplorer({"w": torch.ones(2, 2)}, model="mlp")
