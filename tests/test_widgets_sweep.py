"""The sweep widget, driven headlessly: set ``.value``, ``.click()``, wait on the thread."""

from __future__ import annotations

import base64
import threading
from dataclasses import replace

import numpy as np
import pytest

from ewclab.data import load_task
from ewclab.experiment import TaskACache, sweep
from ewclab.widgets_sweep import SweepWidget


def _small(name: str, n_train: int, n_test: int = 200):
    task = load_task(name)
    return replace(task, x_train=task.x_train[:n_train], y_train=task.y_train[:n_train],
                   x_test=task.x_test[:n_test], y_test=task.y_test[:n_test])


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tasks():
    return [_small("mnist", 256), _small("fashion-mnist", 256)]


def _png(out) -> bytes:
    assert len(out.outputs) == 1
    png = base64.b64decode(out.outputs[0]["data"]["image/png"])
    assert png.startswith(b"\x89PNG")
    return png


def _click_run_and_wait(widget: SweepWidget) -> None:
    widget.run_button.click()
    assert widget.wait(120), "the sweep did not finish in time"
    assert widget.error is None, widget.result.value


def test_a_sweep_draws_the_curve_and_equals_experiment_sweep(tasks):
    cache = TaskACache()
    widget = SweepWidget(tasks, epochs=1, cache=cache)
    widget.lams_text.value = "0, 100, 1000"
    _click_run_and_wait(widget)
    _png(widget.plot)
    assert widget.progress.value == widget.progress.max and not widget.running
    assert "3 λ" in widget.result.value
    curve = widget.curves["ewc"]
    assert [lam for lam, _, _ in curve] == [0.0, 100.0, 1000.0]
    expected = sweep([0.0, 100.0, 1000.0], tasks, "mlp", "ewc", epochs=1, cache=cache)
    for (_, a, b), h in zip(curve, expected, strict=True):
        assert a == pytest.approx(h.accuracy_matrix[1, 0], abs=0.005)
        assert b == pytest.approx(h.accuracy_matrix[1, 1], abs=0.005)
    assert cache.misses == 1  # task A trained once, for the widget and the check


def test_l2_adds_a_second_curve_and_the_grid_follows_the_method(tasks):
    widget = SweepWidget(tasks, epochs=1)
    widget.lams_text.value = "0, 100"
    _click_run_and_wait(widget)
    widget.method_choice.value = "l2"
    assert widget.lams_text.value.startswith("0, ")  # the l2 row's grid
    assert widget.lams_text.value != "0, 100"
    widget.lams_text.value = "0.01, 0.1"
    _click_run_and_wait(widget)
    assert set(widget.curves) == {"ewc", "l2"}
    assert [lam for lam, _, _ in widget.curves["l2"]] == [0.01, 0.1]


def test_the_curve_is_drawn_live_while_the_copies_learn(tasks):
    widget = SweepWidget(tasks, epochs=2)
    widget.redraw_every = 0.0
    widget.lams_text.value = "0, 300"
    frames = []
    widget.plot.observe(lambda change: frames.append(change["new"]), names="outputs")
    _click_run_and_wait(widget)
    assert len(frames) > 2  # live redraws during task B, and the final one


def test_stop_ends_the_sweep_after_the_step_in_progress(tasks):
    widget = SweepWidget([_small("mnist", 2048), _small("fashion-mnist", 2048)], epochs=2)
    widget.lams_text.value = "0, 300"
    steps_a = 2 * 2048 // 64
    seen = threading.Event()

    def on_progress(change) -> None:  # runs in the worker thread, between two steps
        if change["new"] > steps_a and not seen.is_set():
            seen.set()
            widget.stop_button.click()

    widget.progress.observe(on_progress, names="value")
    _click_run_and_wait(widget)
    assert seen.is_set() and "Stopped" in widget.result.value
    assert widget.curves == {}
    assert all(np.isnan(h.accuracy_matrix[1]).all() for h in widget.histories)
    assert not widget.run_button.disabled and widget.stop_button.disabled


def test_a_bad_grid_is_refused_in_the_result_line(tasks):
    widget = SweepWidget(tasks, epochs=1)
    for text in ("", "0, -1", "1, x", "1, 1"):
        widget.lams_text.value = text
        assert widget.run() is False
        assert "λ grid must" in widget.result.value
    assert widget.histories == [] and not widget.running


def test_an_unstable_lambda_fails_with_one_line(tasks):
    widget = SweepWidget(tasks, epochs=1)
    widget.lams_text.value = "10, 1e7"
    widget.run_button.click()
    assert widget.wait(120)
    assert widget.error is not None
    assert "λ = 1e+07" in widget.result.value and "Sweep failed" in widget.result.value
    assert not widget.run_button.disabled


@pytest.mark.parametrize("kwargs, error", [
    (dict(model="resnet"), ValueError), (dict(method="sgd"), ValueError),
    (dict(lams=[1.0, -2.0]), ValueError), (dict(cache="x"), TypeError),
    (dict(seed=-1), ValueError), (dict(tasks="mnist->cifar"), ValueError),
])
def test_bad_arguments_are_refused(tasks, kwargs, error):
    with pytest.raises(error):
        SweepWidget(**({"tasks": tasks} | kwargs))
