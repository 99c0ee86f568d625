"""Continual-learning metrics from an accuracy matrix.

The accuracy matrix ``R`` of a run over ``T`` tasks is ``(T, T)`` with ``R[i, j]`` the
test accuracy on task ``j`` after training task ``i`` (rows: time, columns: tasks).

- average accuracy: ``ACC = 1/T sum_j R[T-1, j]``, the mean over all tasks at the end;
- backward transfer (Lopez-Paz & Ranzato, 2017):
  ``BWT = 1/(T-1) sum_{j<T-1} (R[T-1, j] - R[j, j])``; negative values are forgetting;
- forgetting (Chaudhry et al., 2018):
  ``F = 1/(T-1) sum_{j<T-1} (max_{l<T-1} R[l, j] - R[T-1, j])``, the mean drop from the
  best accuracy a task ever had to its final accuracy.

Each function also accepts an object with an ``accuracy_matrix`` attribute (a
:class:`ewclab.history.History`). Entries that a metric does not read may be NaN (a run
stopped early leaves unknown rows); the entries it reads must be finite.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["average_accuracy", "backward_transfer", "forgetting"]


def _matrix(R: Any, min_tasks: int) -> np.ndarray:
    """Return ``R`` as a float ``(T, T)`` array, ``T >= min_tasks``, or raise ValueError."""
    R = getattr(R, "accuracy_matrix", R)
    try:
        R = np.asarray(R, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"expected a square accuracy matrix of numbers, got {R!r}") from err
    if R.ndim != 2 or R.shape[0] != R.shape[1]:
        raise ValueError(f"expected a square (T, T) accuracy matrix, got shape {R.shape}")
    if R.shape[0] < min_tasks:
        raise ValueError(
            f"expected an accuracy matrix of at least {min_tasks} task(s), got {R.shape[0]}"
        )
    return R


def _check_finite(values: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(values)):
        raise ValueError(f"expected finite accuracies in {what}, got {values.tolist()}")


def average_accuracy(R: Any) -> float:
    """Mean test accuracy over all tasks after training the last one.

    Parameters
    ----------
    R : array-like of shape (T, T), or an object with ``accuracy_matrix``
        Accuracy matrix, ``R[i, j]`` = accuracy on task ``j`` after training task ``i``.

    Returns
    -------
    float
        ``mean(R[T-1, :])``.

    Raises
    ------
    ValueError
        If ``R`` is not square with ``T >= 1`` or its last row is not finite.
    """
    R = _matrix(R, min_tasks=1)
    last = R[-1]
    _check_finite(last, "the last row")
    return float(last.mean())


def backward_transfer(R: Any) -> float:
    """Backward transfer (BWT) of Lopez-Paz & Ranzato (2017).

    The mean change of each earlier task's accuracy from just after it was learned to
    the end: ``1/(T-1) sum_{j<T-1} (R[T-1, j] - R[j, j])``. Negative means forgetting.

    Parameters
    ----------
    R : array-like of shape (T, T), or an object with ``accuracy_matrix``
        Accuracy matrix with ``T >= 2``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``R`` is not square, has fewer than 2 tasks, or a used entry (the last row
        and the diagonal, except their shared corner) is not finite.
    """
    R = _matrix(R, min_tasks=2)
    final = R[-1, :-1]
    learned = np.diag(R)[:-1]
    _check_finite(final, "the last row")
    _check_finite(learned, "the diagonal")
    return float((final - learned).mean())


def forgetting(R: Any) -> float:
    """Average forgetting of Chaudhry et al. (2018).

    For each task ``j`` but the last, the drop from its best accuracy while later tasks
    were trained (rows ``l = j .. T-2``) to its final accuracy ``R[T-1, j]``, averaged over
    ``j``: ``1/(T-1) sum_{j<T-1} (max_{l<T-1} R[l, j] - R[T-1, j])``. Entries above the
    diagonal (tasks not yet trained) are ignored.

    Parameters
    ----------
    R : array-like of shape (T, T), or an object with ``accuracy_matrix``
        Accuracy matrix with ``T >= 2``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``R`` is not square, has fewer than 2 tasks, or a used entry (the lower
        triangle with the diagonal) is not finite.
    """
    R = _matrix(R, min_tasks=2)
    T = R.shape[0]
    lower = R[np.tril_indices(T)]
    _check_finite(lower, "the lower triangle")
    best = np.array([R[j : T - 1, j].max() for j in range(T - 1)])
    return float((best - R[-1, :-1]).mean())
