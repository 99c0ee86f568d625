"""Metrics against hand-computed accuracy matrices."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from ewclab.metrics import average_accuracy, backward_transfer, forgetting

# Three tasks. Rows: after training task i; columns: accuracy on task j.
R3 = [
    [0.90, 0.10, 0.05],
    [0.60, 0.80, 0.20],
    [0.50, 0.70, 0.95],
]


def test_average_accuracy_is_mean_of_last_row():
    assert average_accuracy(R3) == pytest.approx((0.50 + 0.70 + 0.95) / 3)


def test_backward_transfer_by_hand():
    # (0.50 - 0.90) + (0.70 - 0.80) = -0.50, over T-1 = 2 tasks
    assert backward_transfer(R3) == pytest.approx(-0.25)


def test_forgetting_by_hand():
    # task 0: best of rows 0..1 = 0.90, final 0.50 -> 0.40
    # task 1: best of row 1 = 0.80, final 0.70 -> 0.10
    assert forgetting(R3) == pytest.approx(0.25)


def test_forgetting_uses_best_not_just_diagonal():
    R = [
        [0.5, 0.0, 0.0],
        [0.9, 0.8, 0.0],  # task 0 improved while training task 1 (forward help)
        [0.6, 0.8, 0.7],
    ]
    assert forgetting(R) == pytest.approx(((0.9 - 0.6) + 0.0) / 2)
    assert backward_transfer(R) == pytest.approx(((0.6 - 0.5) + 0.0) / 2)


def test_positive_backward_transfer_and_zero_forgetting():
    R = [[0.6, 0.1], [0.7, 0.9]]
    assert backward_transfer(R) == pytest.approx(0.1)
    assert forgetting(R) == pytest.approx(-0.1)
    assert average_accuracy(R) == pytest.approx(0.8)


def test_unused_nan_entries_are_allowed():
    R = np.array(R3)
    R[0, 1:] = np.nan  # before training a task its accuracy may be unknown
    assert average_accuracy(R) == pytest.approx(average_accuracy(R3))
    assert backward_transfer(R) == pytest.approx(-0.25)
    assert forgetting(R) == pytest.approx(0.25)


def test_accepts_history_like_object():
    assert backward_transfer(SimpleNamespace(accuracy_matrix=np.array(R3))) == pytest.approx(
        -0.25
    )


def test_single_task():
    assert average_accuracy([[0.7]]) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="at least 2"):
        backward_transfer([[0.7]])
    with pytest.raises(ValueError, match="at least 2"):
        forgetting([[0.7]])


@pytest.mark.parametrize("metric", [average_accuracy, backward_transfer, forgetting])
@pytest.mark.parametrize(
    "bad, match",
    [
        ([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], "square"),
        ([0.1, 0.2], "square"),
        (np.zeros((0, 0)), "at least"),
        ([["a", "b"], ["c", "d"]], "numbers"),
    ],
)
def test_rejects_non_square(metric, bad, match):
    with pytest.raises(ValueError, match=match):
        metric(bad)


@pytest.mark.parametrize(
    "metric, where",
    [(average_accuracy, (2, 0)), (backward_transfer, (1, 1)), (forgetting, (1, 0))],
)
def test_rejects_nan_in_used_part(metric, where):
    R = np.array(R3)
    R[where] = math.nan
    with pytest.raises(ValueError, match="finite"):
        metric(R)


def test_input_not_mutated():
    R = np.array(R3)
    before = R.copy()
    forgetting(R)
    backward_transfer(R)
    np.testing.assert_array_equal(R, before)
