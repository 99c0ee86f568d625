"""The playground and Fisher explorer, driven headlessly: set ``.value``, ``.click()``, wait."""

from __future__ import annotations

import base64
import logging
import math
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from ipywidgets import FloatLogSlider

from ewclab import plots, widgets
from ewclab.data import load_task
from ewclab.experiment import TaskACache, make_model
from ewclab.fisher import fisher_diagonal
from ewclab.settings import defaults
from ewclab.widgets import (
    MODEL_CHOICES,
    TASK_PAIRS,
    EWCPlayground,
    FisherExplorer,
    lam_range,
    largest_stable_lam,
)

PNG_MAGIC = b"\x89PNG"


def _small(name: str, n_train: int, n_test: int = 200):
    task = load_task(name)
    return replace(
        task, x_train=task.x_train[:n_train], y_train=task.y_train[:n_train],
        x_test=task.x_test[:n_test], y_test=task.y_test[:n_test],
    )  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


def _progress_started(pg: EWCPlayground) -> threading.Event:
    """An event set by the worker thread when the progress bar first moves."""
    started = threading.Event()
    pg.progress.observe(lambda change: change["new"] > 0 and started.set(), names="value")
    return started


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
    assert pg.lam_slider.value == pytest.approx(defaults("mnist->fashion", "mlp", "ewc").lam)
    assert "ewclab-lam-limit" in pg.lam_limit._dom_classes
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
    lam = defaults("mnist->fashion", "mlp", "ewc").lam
    assert not pg.lam_slider.disabled and pg.lam == pytest.approx(lam)


def test_lam_zero_starts_with_ewc_off(tasks):
    pg = _playground(tasks, lam=0)
    assert not pg.ewc_toggle.value and pg.method == "sgd"
    assert pg.lam_slider.value == pytest.approx(defaults("mnist->fashion", "mlp", "ewc").lam)


def test_stop_halts_quickly_and_run_while_running_is_a_no_op(long_tasks):
    pg = _playground(long_tasks, epochs_a=20, epochs_b=20, fisher_samples=100)
    started = _progress_started(pg)
    pg.run_button.click()
    assert pg.run_button.disabled and not pg.stop_button.disabled
    thread = pg._thread
    assert started.wait(60), "the run did not start"

    assert pg.run() is False
    pg.run_button.click()
    assert pg._thread is thread
    assert [t.name for t in threading.enumerate()].count("ewclab-run") == 1

    pg.stop_button.click()
    assert pg.wait(60)
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


def test_worker_error_is_one_line_and_buttons_recover(tasks, monkeypatch, caplog):
    def broken(history, fig=None):
        raise RuntimeError("cannot draw\nsecond line of the message")

    monkeypatch.setattr(plots, "plot_accuracy", broken)
    pg = _playground(tasks)
    with caplog.at_level(logging.DEBUG, logger="ewclab"):
        pg.run_button.click()
        assert pg.wait(60)
    assert isinstance(pg.error, RuntimeError)
    assert pg.result.value == "Run 1 failed: cannot draw"
    assert pg.plot.outputs == ()
    texts = [out for box in pg.widget.children for out in getattr(box, "children", [box])]
    assert not any(getattr(o, "outputs", ()) for o in texts), "something besides the line"
    (record,) = [r for r in caplog.records if r.exc_info]
    assert record.levelno == logging.DEBUG and record.exc_info[1] is pg.error
    assert pg.progress.bar_style == "danger"
    _assert_idle(pg)

    monkeypatch.undo()
    _click_run_and_wait(pg)
    assert len(pg.results) == 1 and "Run 2" in pg.result.value


def test_failures_never_pile_up(tasks, monkeypatch):
    def diverging(*args, **kwargs):
        raise FloatingPointError("training diverged: the loss is nan")

    monkeypatch.setattr(widgets, "run_plan", diverging)
    pg = _playground(tasks)
    for run in (1, 2, 3):
        assert pg.run()
        assert pg.wait(60)
        assert pg.result.value == f"Run {run} failed: training diverged: the loss is nan"
        _assert_idle(pg)
    assert pg.plot.outputs == ()


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"tasks": "mnist->cifar"}, ValueError),
        ({"tasks": [1, 2]}, TypeError),
        ({"model": "resnet"}, ValueError),
        ({"model": 3}, TypeError),
        ({"lam": 1e7}, ValueError),
        ({"lam": -1.0}, ValueError),
        ({"lam": math.nan}, ValueError),
        ({"lam": "big"}, TypeError),
        ({"epochs_a": 0}, ValueError),
        ({"epochs_b": 2.5}, TypeError),
        ({"epochs_a": 21}, ValueError),
        ({"fisher": "batch"}, ValueError),
        ({"fisher_samples": 0}, ValueError),
        ({"fisher_samples": "many"}, TypeError),
        ({"cache": {}}, TypeError),
        ({"seed": -1}, ValueError),
        ({"seed": 2**64}, ValueError),
        ({"seed": "x"}, TypeError),
        ({"seed": 1.5}, TypeError),
        ({"seed": None}, TypeError),
        ({"source": "web"}, ValueError),
        ({"source": None}, TypeError),
        ({"root": 5}, TypeError),
    ],
)
def test_bad_settings_are_rejected_naming_the_argument(options, error):
    (name,) = options
    rng = torch.random.get_rng_state()
    with pytest.raises(error, match=rf"^{name} must be"):
        EWCPlayground(**options)
    assert torch.equal(torch.random.get_rng_state(), rng)  # nothing drawn, nothing trained


def test_lam_slider_range_and_step():
    pg = EWCPlayground()
    default = defaults("mnist->fashion", "mlp", "ewc").lam
    lo, hi = lam_range(default)
    assert (pg.lam_slider.min, pg.lam_slider.max) == (lo, hi)
    assert 10**lo <= 1 and 2 * default <= 10**hi <= 4 * default
    assert pg.lam_slider.step <= 0.05  # one arrow key moves λ by 12 % at most


@pytest.fixture
def table(monkeypatch):
    """A defaults table with a different λ and epochs for every (task pair, model)."""
    lams = {(p, m): 10.0 ** (1 + i + 0.1 * j)
            for i, p in enumerate(TASK_PAIRS) for j, m in enumerate(MODEL_CHOICES)}

    def fake(tasks, model, method):
        i = TASK_PAIRS.index(tasks.replace("-mnist", ""))
        row = defaults(tasks, model, method)
        lam = lams[TASK_PAIRS[i], model] if method == "ewc" else 0.0
        return replace(row, lam=lam, epochs=2 + i + MODEL_CHOICES.index(model),
                       lr=0.001 * (1 + i), width=row.width)

    monkeypatch.setattr(widgets, "defaults", fake)
    return fake


def test_choices_move_lam_and_epochs_to_their_defaults(table):
    pg = EWCPlayground()
    for pair in TASK_PAIRS:
        for model in MODEL_CHOICES:
            pg.task_choice.value, pg.model_choice.value = pair, model
            row = table(pair, model, "ewc")
            assert pg.lam_slider.value == pytest.approx(row.lam), (pair, model)
            assert (pg.lam_slider.min, pg.lam_slider.max) == pytest.approx(lam_range(row.lam))
            assert pg.epochs_a.value == pg.epochs_b.value == row.epochs


def test_runs_use_their_rows_settings(table, monkeypatch):
    calls = []

    def record(*args, **kwargs):
        calls.append((args, kwargs))
        raise RuntimeError("recorded")

    monkeypatch.setattr(widgets, "run_plan", record)
    pg = EWCPlayground(tasks="fashion->mnist", model="testnet")
    for method in ("ewc", "sgd"):
        pg.ewc_toggle.value = method == "ewc"
        assert pg.run() and pg.wait(60)
        (p,), _ = calls[-1]
        row = table("fashion->mnist", "testnet", method)
        lam = row.lam if method == "ewc" else 0.0
        assert (p.model, p.method, p.lam, p.epochs) == ("testnet", method, lam,
                                                        (row.epochs, row.epochs))
        assert (p.lr, p.width, p.optimizer, p.batch_size) == (
            row.lr, row.width, row.optimizer, row.batch_size)


def test_stability_limit_is_shown_and_a_run_above_it_is_refused(tasks):
    cache = TaskACache()
    pg = _playground(tasks, cache=cache, lam=10.0)
    assert pg.stable_lam is None and "known once task A is trained" in pg.lam_limit.value
    _click_run_and_wait(pg)
    fisher = pg.history.fisher[pg.history.tasks[0]]
    max_f = max(float(f.max()) for f in fisher.values())
    limit = largest_stable_lam(max_f, defaults("mnist->fashion", "mlp", "ewc"))
    assert pg.stable_lam == pytest.approx(limit) and math.isfinite(limit)
    assert f"λ &lt; {limit:.3g}" in pg.lam_limit.value

    pg.lam_slider.max = math.log10(limit) + 1  # let the slider reach past the limit
    pg.lam_slider.value = 2 * limit
    assert "Run is refused" in pg.lam_limit.value
    thread = pg._thread
    assert pg.run() is False
    assert pg._thread is thread and len(pg.results) == 1
    assert pg.result.value.startswith("Not run: λ = ") and "\n" not in pg.result.value
    _assert_idle(pg)
    pg.ewc_toggle.value = False  # plain training has no penalty to diverge on
    assert pg.lam_limit.value == ""

    # a new playground on the same cache knows the limit before its first run
    (hits, misses), other = (cache.hits, cache.misses), _playground(tasks, cache=cache)
    assert other.stable_lam == pytest.approx(limit)
    assert (cache.hits, cache.misses) == (hits, misses)  # looking is not using
    other.epochs_a.value = 2  # another task A: its Fisher is not known
    assert other.stable_lam is None

    # where task A's Fisher is not known yet, the run's own check stops the run
    fresh = _playground(tasks, lam=10.0)
    fresh.lam_slider.max = pg.lam_slider.max
    fresh.lam_slider.value = 2 * limit
    assert fresh.run() and fresh.wait(60)
    assert isinstance(fresh.error, ValueError) and "diverge" in str(fresh.error)
    assert fresh.result.value.startswith("Run 1 stopped before task B: λ = ")
    assert f"stable only for λ &lt; {limit:.3g}" in fresh.result.value
    assert fresh.stable_lam == pytest.approx(limit)  # learned from the failed run
    _assert_idle(fresh)


class _PausingLock:
    """A lock that, when a worker thread releases it at the end of a run, pauses that thread
    right after the release until the test says so."""

    def __init__(self, pg: EWCPlayground) -> None:
        self.pg, self.lock = pg, threading.Lock()
        self.released, self.resume = threading.Event(), threading.Event()

    def __enter__(self):
        self.lock.acquire()
        return self

    def __exit__(self, *exc) -> None:
        ending = not self.pg._running and threading.current_thread().name == "ewclab-run"
        self.lock.release()
        if ending and not self.released.is_set():
            self.released.set()
            assert self.resume.wait(60)


def test_run_landing_as_a_run_ends_keeps_run_disabled(tasks, monkeypatch):
    gates = [threading.Event(), threading.Event()]

    calls = []

    def gated(*args, **kwargs):
        calls.append(args)
        run = len(calls)
        assert gates[run - 1].wait(60)
        raise RuntimeError(f"run {run} over")

    monkeypatch.setattr(widgets, "run_plan", gated)
    pg = _playground(tasks)
    pg._lock = lock = _PausingLock(pg)
    assert pg.run()
    first = pg._thread
    gates[0].set()
    assert lock.released.wait(60), "the first run did not end"
    assert pg.run(), "a run after the first ended must start"  # lands in the window
    lock.resume.set()
    first.join(60)
    assert not first.is_alive()
    assert pg.running and pg.run_button.disabled and not pg.stop_button.disabled
    assert pg.run() is False
    gates[1].set()
    assert pg.wait(60)
    assert pg.result.value == "Run 2 failed: run 2 over"
    _assert_idle(pg)


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
