"""What goes wrong with EWC, measured: the numbers lesson 06 ("what goes wrong") computes.

- **λ too large.** Heavy-ball SGD (``torch.optim.SGD`` with momentum μ) on a quadratic of
  curvature h, ``x ← x − lr·v`` with ``v ← μ·v + h·x``, multiplies the pair (x_t, x_{t−1})
  by a 2×2 matrix whose eigenvalues z solve z² − (1 + μ − lr·h) z + μ = 0. It converges
  iff both |z| < 1, i.e. iff 0 < lr·h < 2(1 + μ) (:func:`contraction_rate`,
  :func:`heavy_ball`). The EWC penalty has curvature λ·F_i on weight i.
- **The empirical Fisher shrinks as a model fits its labels.** Per sample, the gradient of
  log p(c|x) with respect to the logits is e_c − p. The empirical Fisher squares it at the
  true label, ‖e_y − p‖²; the exact Fisher averages it over c ~ p, Σ_c p_c ‖e_c − p‖² =
  1 − ‖p‖² (:func:`logit_fisher`). With ε = 1 − p_y the first is at most 2ε², the second
  at least 2ε(1 − ε): as ε → 0 the empirical one vanishes like ε², the exact one like ε.
- **A Fisher from few samples is noisy.** :func:`fisher_convergence` measures the relative
  error of the diagonal from n samples against the one from all of them.

Every function takes plain tensors or a model and returns numbers; the figures are in
:mod:`ewclab.plots.pitfalls`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ewclab.fisher import PreparesInputs, fisher_diagonal
from ewclab.validation import check_int, check_real, check_seed

__all__ = [
    "FisherSize",
    "contraction_rate",
    "fisher_convergence",
    "fisher_size",
    "heavy_ball",
    "logit_fisher",
    "relative_error",
]


@dataclass(frozen=True)
class FisherSize:
    """How large a diagonal Fisher is.

    Attributes
    ----------
    total : float
        Σ_i F_i over every weight (the trace of the diagonal).
    max : float
        max_i F_i: with λ and the learning rate it sets SGD's stability bound.
    """

    total: float
    max: float


def fisher_size(fisher: Mapping[str, Tensor]) -> FisherSize:
    """Σ_i F_i and max_i F_i of a Fisher dict (one tensor per parameter), in float64."""
    values = _flat(fisher, "fisher")
    return FisherSize(total=float(values.sum()), max=float(values.max()))


def relative_error(estimate: Mapping[str, Tensor], reference: Mapping[str, Tensor]) -> float:
    """‖F̂ − F‖₂ / ‖F‖₂ over all weights of two Fisher dicts with the same keys and shapes."""
    if not isinstance(estimate, Mapping) or not isinstance(reference, Mapping):
        raise TypeError("estimate and reference must be dicts of tensors, got "
                        f"{type(estimate).__name__} and {type(reference).__name__}")
    if list(estimate) != list(reference):
        raise ValueError(f"estimate must have the keys of reference {list(reference)}, got "
                         f"{list(estimate)}")
    f_hat, f = _flat(estimate, "estimate"), _flat(reference, "reference")
    if f_hat.shape != f.shape:
        raise ValueError(f"estimate must have {f.numel()} values like reference, got "
                         f"{f_hat.numel()}")
    norm = float(f.norm())
    if norm == 0:
        raise ValueError("reference must not be all zeros, got a Fisher of zeros")
    return float((f_hat - f).norm()) / norm


def fisher_convergence(
    model: nn.Module,
    X: Any,
    y: Any = None,
    sizes: Sequence[int] = (10, 30, 100, 300, 1000),
    kind: str = "exact",
    repeats: int = 3,
    seed: int = 0,
) -> dict[int, list[float]]:
    """Relative error of the diagonal Fisher from n samples, for each n in ``sizes``.

    The reference is :func:`~ewclab.fisher.fisher_diagonal` on all N samples of ``X``;
    for each n, ``repeats`` subsets of n samples are drawn from ``X`` without
    replacement (a generator seeded with ``seed``; torch's global RNG is not touched)
    and each estimate's :func:`relative_error` against the reference is recorded. The
    subsets come from the same N samples, so the error at n = N is 0 (up to float
    rounding: the samples are summed in another order).

    Parameters
    ----------
    model : nn.Module
        A classifier returning logits (a learner, or any module).
    X, y : array-like or Tensor
        Samples (N of them) and labels (needed for ``kind="empirical"``).
    sizes : sequence of int
        Each n in [1, N].
    kind : {"exact", "empirical"}
        The Fisher kind (``"sampled"`` is refused: its own label noise would add to
        the sampling error measured here).
    repeats : int
        Subsets per n.
    seed : int
        Seed of the subsets.

    Returns
    -------
    dict of int to list of float
        n → the ``repeats`` relative errors.
    """
    if kind not in ("exact", "empirical"):
        raise ValueError(f"kind must be 'exact' or 'empirical', got {kind!r}")
    repeats = check_int(repeats, "repeats", low=1)
    seed = check_seed(seed, none_ok=False)
    if isinstance(model, PreparesInputs):
        X, y = model.prepare_inputs(X, y if kind == "empirical" else None)
    else:
        X = torch.as_tensor(X)
        y = None if y is None else torch.as_tensor(y)
    n_total = len(X)
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or not sizes:
        raise TypeError(f"sizes must be a non-empty sequence of ints, got {sizes!r}")
    sizes = [check_int(n, f"sizes[{k}]", low=1, high=n_total) for k, n in enumerate(sizes)]
    reference = fisher_diagonal(model, X, y, kind=kind)
    generator = torch.Generator().manual_seed(seed)
    errors: dict[int, list[float]] = {}
    for n in sizes:
        errors[n] = []
        for _ in range(repeats):
            idx = torch.randperm(n_total, generator=generator)[:n]
            labels = None if y is None else y[idx.to(y.device)]
            estimate = fisher_diagonal(model, X[idx.to(X.device)], labels, kind=kind)
            errors[n].append(relative_error(estimate, reference))
    return errors


def logit_fisher(probs: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per sample, the squared gradient of the log-likelihood with respect to the logits.

    For class probabilities p = softmax(f) the gradient of log p_c with respect to the
    logits f is e_c − p. Returns, per sample n,

    - empirical: ‖e_{y_n} − p_n‖² (the true label y_n);
    - exact: Σ_c p_{n,c} ‖e_c − p_n‖² = 1 − ‖p_n‖² (labels drawn from the model).

    Parameters
    ----------
    probs : array-like, shape (N, C)
        Rows of class probabilities (e.g. ``learner.predict_proba(X)``).
    y : array-like of int, shape (N,)
        True labels in [0, C).

    Returns
    -------
    empirical, exact : numpy.ndarray, shape (N,)
    """
    p = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(y)
    if p.ndim != 2 or len(p) == 0 or not np.isfinite(p).all() or (p < 0).any():
        raise ValueError(f"probs must be an (N, C) array of probabilities, got shape {p.shape}")
    if not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("probs must have rows summing to 1, got sums from "
                         f"{p.sum(axis=1).min():.4g} to {p.sum(axis=1).max():.4g}")
    if labels.shape != (len(p),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"y must be {len(p)} integer labels, got {labels.dtype} of shape "
                         f"{labels.shape}")
    if labels.min() < 0 or labels.max() >= p.shape[1]:
        raise ValueError(f"y must lie in [0, {p.shape[1] - 1}], got [{labels.min()}, "
                         f"{labels.max()}]")
    squared = (p**2).sum(axis=1)  # ‖p‖², (N,)
    p_true = p[np.arange(len(p)), labels]  # (N,)
    empirical = squared - 2 * p_true + 1.0  # ‖e_y − p‖² = 1 − 2 p_y + ‖p‖²
    return np.clip(empirical, 0.0, None), np.clip(1.0 - squared, 0.0, None)


def contraction_rate(lr_h: float, momentum: float) -> float:
    """How much heavy-ball SGD shrinks the error per step on a quadratic: the spectral
    radius max |z| of z² − (1 + μ − lr·h) z + μ = 0 (< 1 iff 0 < lr·h < 2(1 + μ)).

    Parameters
    ----------
    lr_h : float
        Learning rate times the curvature, lr·h >= 0.
    momentum : float
        μ in [0, 1).
    """
    lr_h = check_real(lr_h, "lr_h", low=0)
    mu = check_real(momentum, "momentum", low=0, high=1, high_open=True)
    b = 1 + mu - lr_h
    disc = b * b - 4 * mu
    if disc < 0:  # complex pair, |z|² = μ
        return math.sqrt(mu)
    root = math.sqrt(disc)
    return max(abs(b + root), abs(b - root)) / 2


def heavy_ball(
    lr_h: float, momentum: float, steps: int = 100, x0: float = 1.0
) -> np.ndarray:
    """The distance from the anchor, step by step, of one weight on a penalty ½ h x².

    Runs ``torch.optim.SGD(lr=lr_h, momentum=momentum)`` (h = 1, so lr·h = ``lr_h``) on
    the loss ½ x² from x = ``x0``, exactly the update ewclab's learner uses on a weight
    whose only force is the EWC spring.

    Returns
    -------
    numpy.ndarray, shape (steps + 1,)
        x_0, x_1, ..., x_steps.
    """
    lr_h = check_real(lr_h, "lr_h", low=0, low_open=True)
    momentum = check_real(momentum, "momentum", low=0, high=1, high_open=True)
    steps = check_int(steps, "steps", low=1)
    x0 = check_real(x0, "x0")
    x = torch.tensor([x0], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([x], lr=lr_h, momentum=momentum)
    path = [x0]
    for _ in range(steps):
        optimizer.zero_grad()
        (0.5 * x**2).sum().backward()
        optimizer.step()
        path.append(float(x.detach()))
    return np.asarray(path)


def _flat(fisher: Mapping[str, Tensor], name: str) -> Tensor:
    if not isinstance(fisher, Mapping) or not fisher:
        raise TypeError(f"{name} must be a non-empty dict of tensors, got {fisher!r}")
    if not all(isinstance(v, Tensor) for v in fisher.values()):
        raise TypeError(f"{name} must hold tensors only, got "
                        f"{sorted({type(v).__name__ for v in fisher.values()})}")
    return torch.cat([v.detach().reshape(-1).to("cpu", torch.float64) for v in fisher.values()])
