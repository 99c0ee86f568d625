"""Diagonal Fisher information of a classifier, as EWC uses it.

For a model with logits f(x; θ) and predictive distribution p(c|x) = softmax(f(x; θ))_c,

    F_i = 1/N Σ_n Σ_c q_n(c) · (∂ log p(c|x_n) / ∂θ_i)²

is the **mean over samples of per-sample squared gradients** of the log-likelihood, where the
label weights q_n depend on ``kind``:

- ``"empirical"``: q_n = one-hot of the true label y_n (what the seed's ``consolidate(x, y)``
  computes);
- ``"exact"``: q_n(c) = p(c|x_n), the expectation over the model's own prediction (for the
  cross-entropy loss this equals the diagonal of the generalised Gauss-Newton matrix);
- ``"sampled"``: q_n = one-hot of a label drawn from p(·|x_n) (one Monte-Carlo sample).

The square of a mini-batch *mean* gradient is a different, much smaller quantity that shrinks
with the batch size; it is never what this module returns.

``fisher_diagonal_reference`` is the readable definition: a loop over samples (and classes for
"exact"), one backward pass each. ``fisher_diagonal`` returns the same numbers in a few batched
passes (:mod:`ewclab.fisher_sums`): for ``nn.Linear`` and ``nn.Conv2d`` layers the per-sample
weight gradient is the outer product of the layer's output gradient g_n and its input a_n, so
the sum over samples of its square is (G∘G)ᵀ(A∘A) without materialising per-sample gradients
(a convolution sums over positions first, so its per-sample gradients are formed, a few
samples at a time, and squared). Models with other parametrised layers, or a layer
called twice in one forward pass, use ``torch.func`` (``vmap(grad)``) instead. Both assume the
samples do not interact in ``eval()`` mode (true for dropout and batch norm).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from ewclab import fisher_sums
from ewclab.validation import check_int, check_option

KINDS = ("empirical", "exact", "sampled")


@runtime_checkable
class PreparesInputs(Protocol):
    """A model that checks and converts raw inputs itself, as every
    :class:`ewclab.learner.Learner` does (uint8 images, NHWC, numpy, ...).

    The Fisher functions take such inputs through the model's own ``prepare_inputs``
    (this module states the interface; it imports nothing from the learner); any other
    ``nn.Module`` gets ``torch.as_tensor(X)`` in its parameters' dtype.
    """

    def prepare_inputs(self, X: Any, y: Any = None) -> tuple[Tensor, Tensor | None]:
        """Checked ``(X, y)`` as tensors on the model's device, ``y`` None when not given."""
        ...

Sums = fisher_sums.LayerSums | fisher_sums.FuncSums

logger = logging.getLogger(__name__)


def fisher_diagonal(
    model: nn.Module,
    X: Any,
    y: Any = None,
    kind: str = "exact",
    batch_size: int = 256,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Diagonal Fisher information of ``model`` on the samples ``X``.

    Parameters
    ----------
    model : nn.Module
        A classifier whose forward returns logits of shape (N, C).
    X : array-like or Tensor
        Inputs, in any form ``model.prepare_inputs`` accepts (else anything ``torch.as_tensor``
        accepts), with at least one sample.
    y : array-like or Tensor, optional
        True labels (N,); required for ``kind="empirical"``; the other kinds do not use
        them, but labels that are given are checked all the same (a wrong shape or an
        out-of-range label is an error whatever the kind).
    kind : {"exact", "empirical", "sampled"}, default "exact"
        Which label distribution the squared gradients are averaged over (see module
        docstring). The default is the Fisher of Kirkpatrick et al. and of the lab's settings
        (``ewclab.settings``, used by the CLI, the widgets and the lessons).
    batch_size : int
        Samples per batched pass; changes speed and memory, not the result.
    generator : torch.Generator, optional
        Random source for the labels of ``kind="sampled"`` (the global one if None).

    Returns
    -------
    dict of str to Tensor
        One float32 tensor per trainable parameter, keyed and shaped as in
        ``model.named_parameters()``, detached, on the model's device:
        F_i = 1/N Σ_n Σ_c q_n(c) (∂ log p(c|x_n)/∂θ_i)².

    Raises
    ------
    ValueError, TypeError
        On an unknown ``kind``, a non-positive ``batch_size``, no samples, missing or
        out-of-range labels. The model's train/eval mode is restored in every case.
    """
    batch_size = check_int(batch_size, "batch_size", low=1)
    X, y, params = _prepare(model, X, y, kind)
    u = _uniforms(len(X), generator, X.device) if kind == "sampled" else None
    with eval_mode(model), torch.enable_grad():
        route = fisher_sums.path(model, params, X[:1])
        logger.debug("fisher_diagonal (%s) on %d samples: %s path", kind, len(X), route)
        if route == "per-layer":
            sums: Sums = fisher_sums.LayerSums(model, fisher_sums.layers(model, params), params)
        else:
            sums = fisher_sums.FuncSums(model, params)
        fisher = _sum_batches(X, y, u, kind, batch_size, sums)
    return {name: (f / len(X)).to(torch.float32) for name, f in fisher.items()}


def fisher_diagonal_reference(
    model: nn.Module,
    X: Any,
    y: Any = None,
    kind: str = "exact",
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Readable per-sample definition of :func:`fisher_diagonal` (same arguments and result).

    One forward pass per sample and one backward pass per sample and label:
    F_i = 1/N Σ_n Σ_c q_n(c) (∂ log p(c|x_n)/∂θ_i)².
    """
    X, y, params = _prepare(model, X, y, kind)
    u = _uniforms(len(X), generator, X.device) if kind == "sampled" else None
    fisher = {name: torch.zeros_like(p) for name, p in params.items()}
    with eval_mode(model), torch.enable_grad():
        for n in range(len(X)):
            log_p = torch.log_softmax(model(X[n : n + 1]), dim=-1)[0]
            _check_labels(y, log_p.shape[-1])
            p = log_p.detach().exp()
            if kind == "empirical":
                weighted = [(int(y[n]), 1.0)]
            elif kind == "sampled":
                weighted = [(int(_sample(p[None], u[n : n + 1])[0]), 1.0)]
            else:
                weighted = [(c, float(p[c])) for c in range(len(p))]
            for c, q in weighted:
                grads = torch.autograd.grad(log_p[c], list(params.values()), retain_graph=True)
                for f, g in zip(fisher.values(), grads, strict=True):
                    f += q * g.detach() ** 2
    return {name: (f / len(X)).to(torch.float32) for name, f in fisher.items()}


def _sum_batches(X, y, u, kind, batch_size, sums) -> dict[str, Tensor]:
    """Σ_n Σ_c q_n(c) g_nc², batch by batch; ``sums`` turns columns into squared gradients."""
    for start in range(0, len(X), batch_size):
        batch = slice(start, start + batch_size)
        log_p = sums.forward(X[batch])
        _check_labels(y, log_p.shape[-1])
        p = log_p.detach().exp()
        if kind == "empirical":
            columns = [(y[batch], torch.ones_like(p[:, 0]))]
        elif kind == "sampled":
            columns = [(_sample(p, u[batch]), torch.ones_like(p[:, 0]))]
        else:
            labels = torch.arange(p.shape[1], device=p.device).expand_as(p)
            columns = [(labels[:, c], p[:, c]) for c in range(p.shape[1])]
        sums.add(X[batch], log_p, columns)
    return sums.fisher


def _prepare(model: nn.Module, X: Any, y: Any, kind: str) -> tuple[Tensor, Tensor | None, dict]:
    """Validate and convert the inputs; return (X, y, trainable parameters by name)."""
    check_option(kind, "kind", KINDS)
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("model has no trainable parameters, so it has no Fisher information")
    if kind == "empirical" and y is None:
        raise ValueError('kind="empirical" needs the true labels y, got None')
    first = next(iter(params.values()))
    if isinstance(model, PreparesInputs):
        X, y = model.prepare_inputs(X, y)
    else:
        X = torch.as_tensor(X, dtype=first.dtype)
        y = None if y is None else torch.as_tensor(y, dtype=torch.long)
    X = X.to(first.device)
    if X.ndim < 1 or len(X) == 0:
        raise ValueError(f"the Fisher needs at least one sample, got X of shape {tuple(X.shape)}")
    if y is not None:
        y = y.to(first.device)
        if y.shape != (len(X),):
            raise ValueError(f"y must have shape ({len(X)},) to match X, got {tuple(y.shape)}")
    return X, y, params


def _check_labels(y: Tensor | None, num_classes: int) -> None:
    if y is not None and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes - 1}], got [{int(y.min())}, {int(y.max())}]"
        )


def _uniforms(n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """One uniform number per sample, drawn up front so that batching does not change labels."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")
    source = generator.device if generator is not None else "cpu"
    return torch.rand(n, generator=generator, device=source).to(device)


def _sample(p: Tensor, u: Tensor) -> Tensor:
    """Labels drawn from the rows of ``p`` by inverting their cumulative sums at ``u``."""
    return (p.cumsum(-1) < u[:, None]).sum(-1).clamp(max=p.shape[-1] - 1)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode; restore each one's own previous mode afterwards."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
