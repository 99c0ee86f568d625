"""How well does EWC's quadratic predict what task B did to task A? (lesson 02b)

EWC is the Laplace approximation of task A's posterior: around the anchor θ*_A, task A's
per-sample mean loss is modelled as

    L_A(θ) ≈ L_A(θ*_A) + ½ Δᵀ F Δ,      Δ = θ − θ*_A,

with F the Fisher of task A (the exact Fisher, the expectation over labels drawn from the
model's own p(y|x; θ*_A)). EWC keeps only F's diagonal: ½ Σ_i F_ii Δ_i². After training on
task B, :func:`quadratic_check` measures three numbers on task-A samples:

- ``actual``:   L_A(θ) − L_A(θ*_A), the increase of task A's mean cross-entropy;
- ``full``:     ½ Δᵀ F Δ with the full Fisher, = mean_n Σ_c p(c|x_n) (∂_Δ log p(c|x_n))²,
  computed with one forward-mode derivative along Δ (no F×F matrix is ever built);
- ``diagonal``: ½ Σ_i F_ii Δ_i², the quadratic EWC's penalty uses (penalty / λ).

Their ratios say how much of the gap between the Laplace λ and the λ that works comes from
dropping F's off-diagonal entries, and how much from task A's loss not being quadratic
that far from θ*_A.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F_
from torch import Tensor, nn
from torch.func import functional_call, jvp

__all__ = ["quadratic_check"]


def quadratic_check(
    model: nn.Module,
    X: Any,
    y: Any,
    anchor: Mapping[str, Tensor],
    fisher: Mapping[str, Tensor],
) -> dict[str, float]:
    """Task A's actual loss increase against its full and diagonal Fisher quadratics.

    Parameters
    ----------
    model : nn.Module
        The network now (after task B); it is evaluated in ``eval()`` mode, restored after,
        and its weights are not changed.
    X, y : array-like
        Task-A samples and true labels, in any form ``model.prepare_inputs`` accepts.
    anchor : dict of str to Tensor
        θ*_A, keyed like ``model.named_parameters()`` (e.g. ``model.ewc.terms[0].anchor``).
    fisher : dict of str to Tensor
        Task A's diagonal Fisher, keyed the same way (``model.ewc.terms[0].importance``).

    Returns
    -------
    dict
        ``{"actual": ..., "full": ..., "diagonal": ...}`` (see the module docstring), floats.

    Raises
    ------
    ValueError
        If ``anchor`` or ``fisher`` do not have the model's trainable parameter names and
        shapes.
    """
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    for name, given in (("anchor", anchor), ("fisher", fisher)):
        if not isinstance(given, Mapping) or set(given) != set(params) or any(
            tuple(given[n].shape) != tuple(p.shape) for n, p in params.items()
        ):
            raise ValueError(f"{name} must be keyed and shaped like the trainable parameters")
    X, y = model.prepare_inputs(X, y) if hasattr(model, "prepare_inputs") else (X, y)
    X, y = torch.as_tensor(X), torch.as_tensor(y).long()
    theta = {n: p.detach() for n, p in params.items()}
    star = {n: anchor[n].detach().to(p) for n, p in theta.items()}
    delta = {n: theta[n] - star[n] for n in theta}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            now = F_.cross_entropy(functional_call(model, theta, (X,)), y)
            before = F_.cross_entropy(functional_call(model, star, (X,)), y)

        def log_p(weights: dict[str, Tensor]) -> Tensor:
            return torch.log_softmax(functional_call(model, weights, (X,)), dim=-1)  # (N, C)

        with torch.no_grad(), warnings.catch_warnings():
            # torch.func may trip torch's own deprecation of torch.jit.script: not ours to fix
            warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", FutureWarning)
            log_p_star, d_log_p = jvp(log_p, (star,), (delta,))  # (N, C), (N, C)
        full = 0.5 * (log_p_star.exp() * d_log_p**2).sum(dim=-1).mean()
        diagonal = 0.5 * sum((fisher[n].to(d) * d**2).sum() for n, d in delta.items())
    finally:
        model.train(was_training)
    return {"actual": float(now - before), "full": float(full), "diagonal": float(diagonal)}
