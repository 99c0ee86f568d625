"""Lesson 05's figures of a long sequence: one panel per task, and the average so far."""

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ewclab.history import History  # noqa: E402
from ewclab.plots.style import METHOD_COLOURS  # noqa: E402
from ewclab.plots.task_panels import (  # noqa: E402
    RUN_COLOURS,
    average_so_far,
    plot_average_so_far,
    plot_task_panels,
)

TASKS = ["A", "B", "C"]


def run(method: str, keep: float, finish: int = 3) -> History:
    """Three tasks, two evaluations per task; each task learned to 0.9, earlier ones kept at
    ``keep`` once a later task trains; tasks not trained yet sit at 0.1."""
    h = History(TASKS, {"method": method, "lam": 1.0})
    h.record(0, {t: 0.1 for t in TASKS})
    for i, task in enumerate(TASKS[:finish]):
        h.start_task(task, 10 * i)
        accs = {t: 0.9 if j == i else keep if j < i else 0.1 for j, t in enumerate(TASKS)}
        h.record(10 * i + 5, accs)
        h.record(10 * i + 10, accs)
        h.finish_task(task, accs)
    return h


def test_average_so_far_is_the_mean_of_each_row_over_the_trained_tasks():
    h = run("sgd", keep=0.3)
    R = h.accuracy_matrix
    expected = [R[0, 0], (R[1, 0] + R[1, 1]) / 2, R[2].mean()]
    assert average_so_far(h) == pytest.approx(expected)
    assert average_so_far(h) == pytest.approx([0.9, 0.6, (0.3 + 0.3 + 0.9) / 3])
    assert average_so_far(h.to_dict()) == pytest.approx(expected)
    assert average_so_far(R) == pytest.approx(expected)


def test_average_so_far_stops_at_a_row_not_reached():
    assert average_so_far(run("ewc", keep=0.8, finish=2)) == pytest.approx([0.9, 0.85])
    with pytest.raises(ValueError, match="square"):
        average_so_far([[0.5, 0.5]])


def test_task_panels_one_panel_per_task_curves_start_when_the_task_is_trained():
    runs = {"plain SGD": run("sgd", 0.3), "EWC": run("ewc", 0.8)}
    fig = plot_task_panels(runs, chance=0.1, columns=2)
    assert isinstance(fig, Figure)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 3 and len(fig.axes) == 4  # 2 x 2 grid, the fourth hidden
    for j, ax in enumerate(panels):
        assert ax.get_title().startswith(f"task {j + 1}")
        curves = [line for line in ax.get_lines() if line.get_label() in runs]
        assert [c.get_label() for c in curves] == list(runs)
        x = curves[0].get_xdata()
        assert min(x) == 10 * j  # from the start of the task's training, not before
        y_ewc = curves[1].get_ydata()
        assert y_ewc[-1] == pytest.approx(100 * (0.9 if j == 2 else 0.8))
        chance = [line for line in ax.get_lines() if list(line.get_ydata()) == [10, 10]]
        assert chance
    # the method's colour when every run has a distinct method with a colour
    colours = [line.get_color() for line in panels[0].get_lines() if line.get_label() in runs]
    assert colours == [METHOD_COLOURS["sgd"], METHOD_COLOURS["ewc"]]


def test_task_panels_colours_per_run_when_methods_repeat():
    runs = {"λ = 1": run("ewc", 0.5), "λ = 10": run("ewc", 0.8)}
    ax = plot_task_panels(runs).axes[0]
    colours = [line.get_color() for line in ax.get_lines() if line.get_label() in runs]
    assert colours == list(RUN_COLOURS[:2])
    styles = [line.get_linestyle() for line in ax.get_lines() if line.get_label() in runs]
    assert styles[0] != styles[1]  # told apart without colour


def test_plot_average_so_far_draws_each_run_and_the_references():
    runs = {"plain SGD": run("sgd", 0.3), "EWC": run("ewc", 0.8)}
    fig = plot_average_so_far(runs, reference={"task A alone": 0.9}, chance=0.1)
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["plain SGD"].get_xdata()) == [1, 2, 3]
    assert lines["plain SGD"].get_ydata() == pytest.approx([90, 60, 50])
    assert lines["EWC"].get_ydata() == pytest.approx([90, 85, 100 * (0.8 + 0.8 + 0.9) / 3])
    assert list(lines["task A alone"].get_ydata()) == [90, 90]
    assert "chance (10 %)" in lines
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()


@pytest.mark.parametrize("bad", [{}, {str(k): None for k in range(5)}, [run("sgd", 0.3)]])
def test_runs_refused(bad):
    with pytest.raises((ValueError, TypeError)):
        plot_task_panels(bad)


def test_runs_of_other_tasks_refused():
    other = History(["A", "B"], {"method": "sgd"})
    with pytest.raises(ValueError, match="other tasks"):
        plot_task_panels({"a": run("sgd", 0.3), "b": other})
    with pytest.raises(ValueError, match="other tasks"):
        plot_average_so_far({"a": run("sgd", 0.3), "b": other})


@pytest.mark.parametrize("kwargs", [{"columns": 0}, {"columns": 1.5}, {"chance": 2.0},
                                    {"chance": math.nan}])
def test_bad_options_refused(kwargs):
    with pytest.raises(ValueError):
        plot_task_panels({"a": run("sgd", 0.3)}, **kwargs)


@pytest.mark.parametrize("reference", [{"x": 1.5}, {"x": "high"}, [0.5]])
def test_bad_reference_refused(reference):
    with pytest.raises(ValueError):
        plot_average_so_far({"a": run("sgd", 0.3)}, reference=reference)


def test_unfinished_run_drawn_up_to_where_it_stopped():
    runs = {"stopped": run("sgd", 0.3, finish=2)}
    fig = plot_task_panels(runs)
    third = fig.axes[2]
    assert not any(len(line.get_xdata()) for line in third.get_lines()
                   if line.get_label() == "stopped")
    ys = plot_average_so_far(runs).axes[0].get_lines()[0].get_ydata()
    assert np.allclose(ys, [90, 60])
