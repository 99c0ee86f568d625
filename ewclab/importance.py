"""Importance per weight besides the Fisher: Synaptic Intelligence (SI) and Memory Aware
Synapses (MAS), as dicts that plug into the same quadratic penalty as EWC's Fisher.

Both return what :func:`ewclab.fisher.fisher_diagonal` returns, one float32 tensor per
trainable parameter keyed and shaped like ``model.named_parameters()``, so a learner
anchors them with ``learner.ewc.add_task(importance)`` (same anchors, same modes) and
the penalty stays ``λ/2 · Σ_i Ω_i (θ_i − θ*_i)²``.

**SI** (Zenke, Poole & Ganguli, ICML 2017, "Continual Learning Through Synaptic
Intelligence"). While task μ is trained, each weight's contribution to the drop of the
task loss L_μ is summed along the trajectory,

    ω_k^μ = Σ_t −g_k(t) · Δθ_k(t),    g = ∂L_μ/∂θ (the task loss, **not** the penalised loss),

and at the end of the task it is normalised by how far the weight moved,

    Ω_k^μ = ω_k^μ / ((Δ_k^μ)² + ξ),   Δ_k^μ = θ_k(end of task μ) − θ_k(start of task μ).

The paper's surrogate loss is ``L_μ + c · Σ_k Ω_k (θ̃_k − θ_k)²`` with Ω summed over the
tasks so far and a single anchor θ̃ (the latest weights): that is EWC's ``"online"`` mode
with γ = 1, and λ = 2c (no ½ there). The reference code (github.com/ganguli-lab/pathint)
takes g from the unregularised loss and clips the running Ω at zero; here each task's Ω
is clipped at zero (a negative ω, possible with momentum or Adam, would push a weight
*away* from its anchor, and ``EWC.add_task`` accepts no negative importance).

**MAS** (Aljundi et al., ECCV 2018, "Memory Aware Synapses: Learning what (not) to
forget"). The sensitivity of the learned function's output to each weight, on unlabelled
samples x_1..x_N:

    Ω_i = 1/N Σ_n | ∂ ‖f(x_n; θ)‖²₂ / ∂θ_i |,

the gradient of the **squared** L2 norm of the output (the logits), its absolute value
taken **per sample**, then averaged. The authors' code (github.com/rahafaljundi/
MAS-Memory-Aware-Synapses) takes the absolute value of a whole mini-batch's summed gradient
and divides by the sample count, which equals this only for batches of one sample and is
smaller otherwise (|Σ a| ≤ Σ |a|). Its penalty is ``λ · Σ Ω (θ − θ*)²`` (no ½): λ = 2·λ_MAS.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from ewclab.fisher import eval_mode
from ewclab.validation import check_int, check_real

__all__ = [
    "DEFAULT_DAMPING", "MAS_BATCH_NUMBERS", "PathIntegral", "mas_importance",
    "mas_importance_reference",
]

#: SI's damping ξ: the value of the reference code's permuted-MNIST run (xi=0.1).
DEFAULT_DAMPING = 0.1

#: Per-sample gradient numbers :func:`mas_importance` holds at once by default (2**24:
#: 64 MB in float32): 35 samples a pass for the 784-400-400-10 MLP, 4 for AlexNet at
#: width 0.25, 1 for AlexNet at width 1.0.
MAS_BATCH_NUMBERS = 2**24


class PathIntegral:
    """Synaptic Intelligence's path integral over the training of one task.

    Create it when a task starts (it copies the weights θ(start)), call :meth:`update`
    after **every** optimiser step, and at the end of the task hand :meth:`importance`
    to the penalty::

        tracker = PathIntegral(learner, ewc=learner.ewc)     # task starts
        for X, y in batches:
            learner.partial_fit(X, y)
            tracker.update()                                   # after each step
        learner.ewc.add_task(tracker.importance())             # task ends

    :meth:`update` reads the gradient the step left in ``p.grad`` (``partial_fit`` and
    a hand-written ``loss.backward(); optimizer.step()`` both leave it there), removes the
    penalty's part ``λ · Σ_terms F (θ − θ*)`` when ``ewc`` is given (SI integrates the
    gradient of the task loss, not of the penalised loss) and adds
    ``−g · (θ_now − θ_before)`` to ω. A step that changed nothing (refused) adds nothing.

    Parameters
    ----------
    model : nn.Module
        The network being trained; its trainable parameters are tracked.
    ewc : ewclab.ewc.EWC, optional
        The penalty that was added to the training loss (a learner's ``learner.ewc``);
        ``None`` when the loss had no penalty.
    damping : float, default :data:`DEFAULT_DAMPING`
        ξ > 0 in Ω = ω / (Δ² + ξ).

    Attributes
    ----------
    start : dict of str to Tensor
        θ(start of task), copies.
    omega : dict of str to Tensor
        The running path integral ω (may be negative for single weights).
    steps : int
        Number of :meth:`update` calls since the task started.
    """

    def __init__(self, model: nn.Module, ewc: Any = None, damping: float = DEFAULT_DAMPING):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {model!r:.80}")
        if ewc is not None and not (hasattr(ewc, "terms") and hasattr(ewc, "lam")):
            raise TypeError(f"ewc must be an ewclab.ewc.EWC or None, got {ewc!r:.80}")
        self.damping = check_real(damping, "damping", low=0, low_open=True)
        params = _params(model)
        self.model, self.ewc = model, ewc
        self.start = {name: p.detach().clone() for name, p in params.items()}
        self.omega = {name: torch.zeros_like(p) for name, p in params.items()}
        self.steps = 0
        self._before = {name: p.detach().clone() for name, p in params.items()}

    def update(self) -> None:
        """Add the optimiser step just taken: ω_k += −g_k · (θ_k(now) − θ_k(before)).

        ``g`` is the gradient in ``p.grad`` minus the penalty's gradient at θ(before).
        Parameters without a gradient contribute nothing. Raises ``ValueError`` (and
        changes nothing) when the model's trainable parameters are no longer the ones
        the tracker started with.
        """
        params = self._check_params()
        penalty_grad = self._penalty_grad()
        new_omega = {}
        for name, p in params.items():
            if p.grad is None:
                new_omega[name] = self.omega[name]
                continue
            g = p.grad.detach()
            if name in penalty_grad:
                g = g - penalty_grad[name]
            new_omega[name] = self.omega[name] - g * (p.detach() - self._before[name])
        self.omega = new_omega  # committed only once every term is computed
        for name, p in params.items():
            self._before[name].copy_(p.detach())
        self.steps += 1

    def importance(self) -> dict[str, Tensor]:
        """Ω = max(ω, 0) / ((θ(now) − θ(start))² + ξ), one float32 tensor per parameter.

        Call it at the end of the task; the tracker is not changed.
        """
        params = self._check_params()
        return {
            name: (self.omega[name].clamp(min=0)
                   / ((p.detach() - self.start[name]) ** 2 + self.damping)).to(torch.float32)
            for name, p in params.items()
        }

    def reset(self) -> None:
        """Start a new task: θ(start) ← the current weights, ω ← 0, steps ← 0."""
        params = self._check_params()
        self.start = {name: p.detach().clone() for name, p in params.items()}
        self._before = {name: p.detach().clone() for name, p in params.items()}
        self.omega = {name: torch.zeros_like(p) for name, p in params.items()}
        self.steps = 0

    def _check_params(self) -> dict[str, Tensor]:
        params = _params(self.model)
        same = set(params) == set(self.start) and all(
            p.shape == self.start[name].shape for name, p in params.items())
        if not same:
            raise ValueError(
                "the model's trainable parameters changed since the tracker started: "
                f"expected {sorted(self.start)}, got {sorted(params)}; create a new PathIntegral"
            )
        return params

    def _penalty_grad(self) -> dict[str, Tensor]:
        """∂penalty/∂θ at θ(before) = λ · Σ_terms F (θ(before) − θ*) (empty without one)."""
        if self.ewc is None or not self.ewc.terms or not self.ewc.lam:
            return {}
        total: dict[str, Tensor] = {}
        for term in self.ewc.terms:
            for name, before in self._before.items():
                part = term.importance[name] * (before - term.anchor[name])
                total[name] = part if name not in total else total[name] + part
        return {name: self.ewc.lam * g for name, g in total.items()}


def mas_importance(model: nn.Module, X: Any, batch_size: int | None = None) -> dict[str, Tensor]:
    """MAS importance Ω_i = 1/N Σ_n |∂ ‖f(x_n; θ)‖²₂ / ∂θ_i| of ``model`` on ``X``.

    Per-sample gradients of the squared L2 norm of the logits come from
    ``torch.func.vmap(grad(...))``, ``batch_size`` samples at a time: they take
    ``batch_size`` × (number of weights) numbers of memory. Computed in ``eval()`` mode; every
    submodule's mode is restored afterwards. No labels are needed (MAS is unsupervised).

    Parameters
    ----------
    model : nn.Module
        A network whose forward returns outputs of shape (N, ...), e.g. logits (N, C).
    X : array-like or Tensor
        Inputs in any form ``model.prepare_inputs`` accepts (else ``torch.as_tensor``),
        at least one sample.
    batch_size : int, optional
        Samples per vectorised pass; changes speed and memory, not the result. Default:
        as many as keep the per-sample gradients within :data:`MAS_BATCH_NUMBERS`
        numbers (64 MB in float32), at least 1 and at most 256.

    Returns
    -------
    dict of str to Tensor
        One float32 tensor per trainable parameter, keyed and shaped as in
        ``model.named_parameters()``, detached, on the model's device, all >= 0.

    Raises
    ------
    TypeError, ValueError
        A non-positive ``batch_size``, no samples, input the model refuses, or a model
        without trainable parameters. The model is not changed.
    """
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size", low=1)
    X, params = _prepare(model, X)
    if batch_size is None:
        weights = sum(p.numel() for p in params.values())
        batch_size = max(1, min(256, MAS_BATCH_NUMBERS // weights))
    theta = {name: p.detach() for name, p in params.items()}

    def squared_norm(theta: dict[str, Tensor], x: Tensor) -> Tensor:
        out = functional_call(model, theta, (x[None],))  # (1, C)
        return (out**2).sum()

    per_sample = vmap(grad(squared_norm), in_dims=(None, 0))
    total = {name: torch.zeros_like(p) for name, p in theta.items()}
    with eval_mode(model), torch.enable_grad():
        for start in range(0, len(X), batch_size):
            grads = per_sample(theta, X[start : start + batch_size])  # name -> (B, *shape)
            for name, t in total.items():
                t += grads[name].abs().sum(0)
    return {name: (t / len(X)).to(torch.float32) for name, t in total.items()}


def mas_importance_reference(model: nn.Module, X: Any) -> dict[str, Tensor]:
    """Readable per-sample loop of :func:`mas_importance` (same arguments and result):
    one forward and one backward pass per sample."""
    X, params = _prepare(model, X)
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    with eval_mode(model), torch.enable_grad():
        for n in range(len(X)):
            out = model(X[n : n + 1])  # (1, C)
            grads = torch.autograd.grad((out**2).sum(), list(params.values()), allow_unused=True)
            for t, g in zip(total.values(), grads, strict=True):
                if g is not None:
                    t += g.abs()
    return {name: (t / len(X)).to(torch.float32) for name, t in total.items()}


def _params(model: nn.Module) -> dict[str, Tensor]:
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("model has no trainable parameters, so no weight has an importance")
    return params


def _prepare(model: nn.Module, X: Any) -> tuple[Tensor, dict[str, Tensor]]:
    """Validated float inputs on the model's device, and the trainable parameters."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {model!r:.80}")
    params = _params(model)
    first = next(iter(params.values()))
    if hasattr(model, "prepare_inputs"):
        X, _ = model.prepare_inputs(X)
    else:
        X = torch.as_tensor(X, dtype=first.dtype)
    X = X.to(first.device)
    if X.ndim < 1 or len(X) == 0:
        raise ValueError(f"X must hold at least one sample, got shape {tuple(X.shape)}")
    return X, params
