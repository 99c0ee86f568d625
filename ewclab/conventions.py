"""Why λ differs by orders of magnitude between EWC libraries: the same network, the same
samples, the importance and the penalty written down under each library's convention,
and the λ that gives the same penalty as ewclab's.

ewclab (:mod:`ewclab.ewc`): F is the **mean over samples of per-sample squared gradients**
of the log-likelihood and the penalty is ``λ/2 · Σ_i F_i (θ_i − θ*_i)²``. Other codes
differ in two ways:

- the importance: the **sum** over N samples instead of the mean (N·F), or the **square
  of mini-batch gradients** of size b (the gradient of a batch's mean loss, squared, then
  averaged over batches; about F/b near a minimum, where the per-sample gradients average
  to zero: it shrinks with the batch size). By Jensen's inequality, with equal batches
  it is at most F for every weight, and equal to F for b = 1;
- the penalty: ``λ · Σ I (θ − θ*)²`` without the ½ (the SI and MAS papers write it so).

A library with importance I ≈ r·F and penalty factor c (½ or 1) gives ewclab's penalty
when ``c · λ' · r = λ / 2``, i.e. ``λ' = λ / (2 c r)``. Since I is not exactly
proportional to F for the batch convention, r is measured as ``Σ_i I_i / Σ_i F_i``: the
two penalties then agree for a displacement of the same size on every weight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ewclab.ewc import check_lam
from ewclab.fisher import eval_mode, fisher_diagonal
from ewclab.validation import check_int

__all__ = ["Convention", "equivalent_lams", "squared_batch_gradients", "table"]


@dataclass(frozen=True)
class Convention:
    """One way of writing the EWC penalty, and the λ that matches ewclab's.

    Attributes
    ----------
    name : str
        Short label, e.g. ``"batch b=64, no ½"``.
    importance : str
        How the importance I is estimated, in words.
    half : bool
        Whether the penalty carries the ½ (``λ/2 · Σ I Δ²``) or not (``λ · Σ I Δ²``).
    ratio : float
        r = Σ_i I_i / Σ_i F_i, with F ewclab's (per-sample mean) Fisher.
    lam : float
        λ' = λ / (2 c r) with c = ½ or 1: the strength that gives ewclab's penalty at λ
        (``inf`` when r = 0: no strength does).
    """

    name: str
    importance: str
    half: bool
    ratio: float
    lam: float


def squared_batch_gradients(
    model: nn.Module, X: Any, y: Any, batch_size: int = 64
) -> dict[str, Tensor]:
    """Mean over mini-batches of the squared gradient of each batch's mean cross-entropy.

    I_i = 1/B Σ_β (∂/∂θ_i [1/|β| Σ_{n∈β} −log p(y_n|x_n)])², with the batches β taken in
    the order of ``X`` (the last one may be smaller) and B their number. This is what
    codes that "square the mini-batch gradients" call the Fisher; it is **not** the
    Fisher (see the module docstring). Computed in ``eval()`` mode; the modes are put back.

    Parameters
    ----------
    model : nn.Module
        A classifier returning logits (N, C).
    X, y : array-like or Tensor
        Samples (any form ``model.prepare_inputs`` accepts) and their labels (N,).
    batch_size : int, default 64
        b, the mini-batch size.

    Returns
    -------
    dict of str to Tensor
        One float32 tensor per trainable parameter, like
        :func:`ewclab.fisher.fisher_diagonal`'s.
    """
    batch_size = check_int(batch_size, "batch_size", low=1)
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("model has no trainable parameters, so no weight has an importance")
    X, y = _prepare(model, X, y, next(iter(params.values())))
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    batches = 0
    with eval_mode(model), torch.enable_grad():
        for start in range(0, len(X), batch_size):
            logits = model(X[start : start + batch_size])  # (b, C)
            loss = F.cross_entropy(logits, y[start : start + batch_size])
            grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            for t, g in zip(total.values(), grads, strict=True):
                if g is not None:
                    t += g.detach() ** 2
            batches += 1
    return {name: (t / batches).to(torch.float32) for name, t in total.items()}


def equivalent_lams(
    model: nn.Module,
    X: Any,
    y: Any,
    lam: float,
    batch_size: int = 64,
    kind: str = "empirical",
) -> list[Convention]:
    """The λ each convention needs to match ewclab's penalty at ``lam`` on ``(X, y)``.

    Parameters
    ----------
    model : nn.Module
        The trained classifier (e.g. a learner after its first task).
    X, y : array-like or Tensor
        The task's samples and true labels.
    lam : float
        ewclab's λ (penalty ``λ/2 · Σ F Δ²``).
    batch_size : int, default 64
        b of the mini-batch convention.
    kind : {"empirical", "exact", "sampled"}, default "empirical"
        ewclab's Fisher kind; "empirical" uses the true labels, as the mini-batch
        convention does, so the two differ only in where the square is taken.

    Returns
    -------
    list of Convention
        ewclab's own row first (ratio 1, λ unchanged), then: mean without ½; sum over the
        N samples with and without ½; squared mini-batch gradients with and without ½.

    Raises
    ------
    TypeError, ValueError
        A bad ``lam``, ``batch_size`` or ``kind``, or samples the model refuses; nothing
        is changed.
    """
    lam = check_lam(lam)
    batch_size = check_int(batch_size, "batch_size", low=1)
    fisher = fisher_diagonal(model, X, y, kind=kind)
    batch = squared_batch_gradients(model, X, y, batch_size=batch_size)
    n = len(y)
    f_sum = sum(float(f.double().sum()) for f in fisher.values())
    b_sum = sum(float(b.double().sum()) for b in batch.values())
    r_batch = b_sum / f_sum if f_sum > 0 else math.nan
    mean = f"per-sample squared gradients, mean over N = {n} ({kind} Fisher)"
    rows = [
        ("ewclab", mean, True, 1.0),
        ("mean, no ½", mean, False, 1.0),
        ("sum", f"per-sample squared gradients, summed over N = {n}", True, float(n)),
        ("sum, no ½", f"per-sample squared gradients, summed over N = {n}", False, float(n)),
        (f"batch b={batch_size}", f"squared mini-batch gradients, b = {batch_size}", True,
         r_batch),
        (f"batch b={batch_size}, no ½", f"squared mini-batch gradients, b = {batch_size}",
         False, r_batch),
    ]
    return [Convention(name, what, half, r, _match(lam, half, r))
            for name, what, half, r in rows]


def table(conventions: list[Convention]) -> str:
    """The conventions as a plain-text table (name, importance ratio, penalty, λ)."""
    lines = [f"{'convention':<22} {'Σ I / Σ F':>10}  {'penalty':<12} {'equivalent λ':>12}"]
    for c in conventions:
        penalty = "λ/2 · Σ I Δ²" if c.half else "λ · Σ I Δ²"
        lines.append(f"{c.name:<22} {c.ratio:>10.4g}  {penalty:<12} {c.lam:>12.4g}")
    return "\n".join(lines)


def _match(lam: float, half: bool, ratio: float) -> float:
    """λ' with c · λ' · r = λ / 2 (c = ½ with the ½, else 1)."""
    if math.isnan(ratio):
        return math.nan
    if ratio == 0:
        return math.inf if lam > 0 else 0.0
    return lam / (ratio if half else 2 * ratio)


def _prepare(model: nn.Module, X: Any, y: Any, first: Tensor) -> tuple[Tensor, Tensor]:
    if y is None:
        raise ValueError("y (the true labels) is required, got None")
    if hasattr(model, "prepare_inputs"):
        X, y = model.prepare_inputs(X, y)
    else:
        X = torch.as_tensor(X, dtype=first.dtype)
        y = torch.as_tensor(y, dtype=torch.long)
    X, y = X.to(first.device), y.to(first.device)
    if X.ndim < 1 or len(X) == 0:
        raise ValueError(f"X must hold at least one sample, got shape {tuple(X.shape)}")
    if y.shape != (len(X),):
        raise ValueError(f"y must have shape ({len(X)},) to match X, got {tuple(y.shape)}")
    return X, y
