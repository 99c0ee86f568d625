"""What counts as divergence in a training step, shared by :class:`ewclab.learner.Learner`
and the side-by-side λ sweep (:mod:`ewclab.side_by_side`).

A step is refused, with every state left as it was, when λ is past SGD's stability bound
(:func:`sgd_curvature_limit`), when its loss is not finite or is :data:`LOSS_JUMP` times
the previous step's, or when its gradients are not finite (:func:`max_abs`). From the first
step with ``lr * max|gradient|`` above :data:`LARGE_STEP` on, steps also keep an undo copy.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Steps with ``lr * max(max|gradient|, 1)`` above this are "large": from the first large
#: step on, every step keeps an undo snapshot and checks the weights after stepping.
LARGE_STEP = 1e6

#: A step whose loss exceeds this many times the previous step's (or 1, if larger) is
#: refused as divergence: healthy training never sees a cross-entropy of 1000.
LOSS_JUMP = 1e3


class DivergenceError(FloatingPointError, ValueError):
    """Training refused a step that would diverge; the model is unchanged.

    Raised before the step when λ is past SGD's stability bound, and when a step's loss,
    gradients or result are not finite. It is a ``FloatingPointError`` (what ewclab
    raised for divergence before) and a ``ValueError`` (a setting is wrong for the data).
    """


def sgd_curvature_limit(lr: float, momentum: float) -> float:
    """2(1 + momentum) / lr: heavy-ball SGD converges on a quadratic of curvature h only
    while h stays below this (lr · h < 2(1 + momentum))."""
    return 2 * (1 + momentum) / lr


def max_abs(tensors: list[Tensor]) -> float:
    """Largest absolute value in the tensors (one min/max pass each); NaN if any is NaN,
    0 for no tensors."""
    if not tensors:
        return 0.0
    return torch.stack([m for t in tensors for m in torch.aminmax(t)]).abs().max().item()
