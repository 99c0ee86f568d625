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

from ewclab.validation import FLOAT32_MAX, check_real

__all__ = ["dominating", "lam_grid", "parse_lams", "tradeoff_points"]

Point = tuple[float, float, float]  # (λ, accuracy on task A after the last task, last task's)

#: Fractions of a combination's table λ that :func:`lam_grid` sweeps (with 0 first).
GRID = (0.01, 0.03, 0.1, 0.3, 1.0)


def lam_grid(top: float) -> list[float]:
    """The default sweep below a table λ ``top``: 0, then ``top`` times :data:`GRID`
    (two decades up to ``top``, which sits 2 to 3.5x below the SGD stability bound)."""
    top = float(check_real(top, "top", low=0, low_open=True, high=FLOAT32_MAX))
    return [0.0] + [float(f"{top * f:.3g}") for f in GRID]


def parse_lams(text: str, name: str = "lambdas") -> list[float]:
    """A λ grid as typed, ``"0,10,100"`` (commas and/or spaces): finite numbers >= 0.

    Raises
    ------
    TypeError
        ``text`` is not a string.
    ValueError
        ``<name> must be ...`` naming the first entry that is not a number >= 0, or an
        empty or repeated grid.
    """
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a string such as '0,10,100', got {text!r}")
    parts = [p for p in text.replace(",", " ").split() if p]
    if not parts:
        raise ValueError(f"{name} must list at least one λ such as '0,10,100', got {text!r}")
    lams = []
    for part in parts:
        try:
            lam = float(part)
        except ValueError:
            lam = math.nan
        if not 0 <= lam <= FLOAT32_MAX:
            raise ValueError(f"{name} must be numbers >= 0 separated by commas, got {part!r} "
                             f"in {text!r}")
        lams.append(lam)
    if len(set(lams)) != len(lams):
        raise ValueError(f"{name} must not repeat a λ, got {text!r}")
    return lams


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


def dominating(
    points: Sequence[Point], challengers: Sequence[Point], tolerance: float = 0.0
) -> list[float | None]:
    """For each of ``points``, the smallest λ among ``challengers`` whose point is no worse
    on both tasks (accuracy on A and on B at least as high, less ``tolerance``), or None
    when none is.

    ``dominating(l2, ewc)`` answers "for every L2 λ, is there an EWC λ at least as good on
    both tasks?": it is when no entry is None. ``tolerance`` (a fraction, e.g. 0.005 for
    half a point) allows for differences smaller than a test set can resolve.
    """
    tolerance = float(check_real(tolerance, "tolerance", low=0, high=1))
    found: list[float | None] = []
    for _, a, b in points:
        better = [lam for lam, a2, b2 in challengers
                  if a2 >= a - tolerance and b2 >= b - tolerance]
        found.append(min(better) if better else None)
    return found
