"""Trade-off points of a sweep, which curve dominates, and the Pareto figure."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from ewclab.history import History
from ewclab.plots.pareto import plot_pareto
from ewclab.tradeoff import dominating, lam_grid, parse_lams, tradeoff_points


def _history(a_after: float, b: float) -> History:
    h = History(["a", "b"])
    h.start_task("a", 0)
    h.finish_task("a", {"a": 0.9, "b": 0.1})
    h.start_task("b", 10)
    h.finish_task("b", {"a": a_after, "b": b})
    return h


def test_tradeoff_points_read_the_last_row():
    points = tradeoff_points([0.0, 100.0], [_history(0.3, 0.8), _history(0.7, 0.6)])
    assert points == [(0.0, 0.3, 0.8), (100.0, 0.7, 0.6)]


def test_an_unfinished_run_or_a_length_mismatch_is_refused():
    stopped = History(["a", "b"])
    stopped.start_task("a", 0)
    with pytest.raises(ValueError, match="did not finish"):
        tradeoff_points([1.0], [stopped])
    with pytest.raises(ValueError, match="same length"):
        tradeoff_points([1.0, 2.0], [_history(0.3, 0.8)])


def test_dominating_finds_the_smallest_lambda_no_worse_on_both():
    l2 = [(0.1, 0.5, 0.7), (1.0, 0.7, 0.4), (10.0, 0.95, 0.1)]
    ewc = [(10.0, 0.4, 0.8), (100.0, 0.6, 0.75), (1000.0, 0.8, 0.5)]
    assert dominating(l2, ewc) == [100.0, 1000.0, None]
    # a tie counts as no worse; a tolerance forgives differences below it
    assert dominating([(1.0, 0.6, 0.75)], ewc) == [100.0]
    assert dominating([(1.0, 0.61, 0.76)], ewc) == [None]
    assert dominating([(1.0, 0.61, 0.76)], ewc, tolerance=0.01) == [100.0]
    with pytest.raises(ValueError, match="tolerance must be"):
        dominating(l2, ewc, tolerance=-0.1)


def test_plot_pareto_draws_one_curve_per_method_in_lambda_order():
    curves = {"ewc": [(1000.0, 0.85, 0.6), (0.0, 0.3, 0.8), (100.0, 0.6, 0.75)],
              "l2": [(0.1, 0.5, 0.7)]}
    fig = plot_pareto(curves, tasks=("mnist", "fashion"), chance=0.1)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    ewc = next(line for line in ax.lines if line.get_label() == "EWC")
    np.testing.assert_allclose(ewc.get_xdata(), [80, 75, 60])  # task B, by λ
    np.testing.assert_allclose(ewc.get_ydata(), [30, 60, 85])  # task A after B
    labels = [line.get_label() for line in ax.lines]
    assert "L2 toward the old weights" in labels
    assert {t.get_text() for t in ax.texts} >= {"λ=0", "λ=100", "λ=1000", "λ=0.1"}
    assert "fashion" in ax.get_xlabel() and "mnist" in ax.get_ylabel()
    # redrawn into the same figure (live plots)
    assert plot_pareto(curves, fig=fig) is fig and len(fig.axes) == 1


@pytest.mark.parametrize("curves", [
    {}, {"adam": [(1.0, 0.5, 0.5)]}, {"ewc": [(1.0, 1.5, 0.5)]}, {"ewc": [(-1.0, 0.5, 0.5)]},
    {"ewc": [(1.0, 0.5)]}, {"ewc": "x"}, [(1.0, 0.5, 0.5)],
])
def test_plot_pareto_refuses_bad_curves(curves):
    with pytest.raises(ValueError, match="curves"):
        plot_pareto(curves)


def test_lam_grid_spans_two_decades_up_to_the_table_lambda():
    assert lam_grid(2000.0) == [0.0, 20.0, 60.0, 200.0, 600.0, 2000.0]
    for bad, error in ((0.0, ValueError), (-1.0, ValueError), ("1", TypeError)):
        with pytest.raises(error, match="top must be"):
            lam_grid(bad)


def test_parse_lams_reads_commas_and_spaces():
    assert parse_lams("0,10, 100 1e3") == [0.0, 10.0, 100.0, 1000.0]


@pytest.mark.parametrize("text, match", [
    ("", "at least one"), (" , ", "at least one"), ("1,-2", "'-2'"), ("1,x", "'x'"),
    ("nan", "'nan'"), ("inf", "'inf'"), ("1e39", "'1e39'"), ("1,1.0", "repeat"),
])
def test_parse_lams_names_the_bad_entry(text, match):
    with pytest.raises(ValueError, match=f"lambdas must .*{match}"):
        parse_lams(text)
    with pytest.raises(TypeError, match="lambdas must be a string"):
        parse_lams([1.0])
