"""Trade-off curves of a λ sweep: the points, and which method's curve covers the other's
(lesson 04).

A sweep over λ gives one point per λ: (task A accuracy after the last task, the last
task's accuracy). One method *dominates* another's point when some λ of it is no worse
on both tasks; when every point of curve B is dominated by a point of curve A, A's
trade-off is at least as good everywhere B reaches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["dominating", "tradeoff_points"]

Point = tuple[float, float, float]  # (λ, accuracy on task A after the last task, last task's)


def tradeoff_points(lams: Sequence[float], histories: Sequence[Any]) -> list[Point]:
    """``(λ, R[-1, 0], R[-1, -1])`` per run: task A after the last task, and the last task.

    Parameters
    ----------
    lams : sequence of float
        The runs' λ.
    histories : sequence of History
        One per λ (e.g. :func:`ewclab.experiment.sweep`'s result); ``accuracy_matrix``
        is read.

    Raises
    ------
    ValueError
        The lengths differ, or a run's final row is not known (a stopped run).
    """
    if len(lams) != len(histories):
        raise ValueError(f"lams and histories must have the same length, got {len(lams)} "
                         f"and {len(histories)}")
    points = []
    for lam, history in zip(lams, histories, strict=True):
        R = history.accuracy_matrix
        a, b = float(R[-1, 0]), float(R[-1, -1])
        if math.isnan(a) or math.isnan(b):
            raise ValueError(f"the run with λ = {lam:g} did not finish (its last row is NaN)")
        points.append((float(lam), a, b))
    return points


def dominating(points: Sequence[Point], challengers: Sequence[Point]) -> list[float | None]:
    """For each of ``points``, the smallest λ among ``challengers`` whose point is no worse
    on both tasks (accuracy on A and on B at least as high), or None when none is.

    ``dominating(l2, ewc)`` answers "for every L2 λ, is there an EWC λ at least as good on
    both tasks?": it is when no entry is None.
    """
    found: list[float | None] = []
    for _, a, b in points:
        better = [lam for lam, a2, b2 in challengers if a2 >= a and b2 >= b]
        found.append(min(better) if better else None)
    return found
