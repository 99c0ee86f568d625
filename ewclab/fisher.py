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
passes: for ``nn.Linear`` and ``nn.Conv2d`` layers the per-sample weight gradient is the outer
product of the layer's output gradient g_n and its input a_n, so the sum over samples of its
square is (g²)ᵀ(a²) without materialising per-sample gradients (convolutions sum over positions
first). Models with other parametrised layers use ``torch.func`` (``vmap(grad)``) instead.
Both assume the samples do not interact in ``eval()`` mode (true for dropout and batch norm).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

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

# (labels, weights) for one backward pass over a batch: Σ_n weights_n · ∇ log p(labels_n|x_n)²
Column = tuple[Tensor, Tensor]
# a Linear/Conv2d layer and its trainable parameters as {local name: name in the model}
Layer = tuple[nn.Module, dict[str, str]]


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
        True labels (N,); required for ``kind="empirical"``, ignored otherwise.
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
    layers = _layers(model, params)
    with _eval_mode(model), torch.enable_grad():
        try:
            if layers is None:
                raise _NotPerLayer
            sums: _LayerSums | _FuncSums = _LayerSums(model, layers, params)
            fisher = _sum_batches(X, y, u, kind, batch_size, sums)
        except _NotPerLayer:
            sums = _FuncSums(model, params)
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
    with _eval_mode(model), torch.enable_grad():
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


class _LayerSums:
    """Σ_n q_n g_n² for Linear/Conv2d layers from their inputs and output gradients."""

    def __init__(self, model: nn.Module, layers: list[Layer], params: dict[str, Tensor]):
        self.model = model
        self.layers = layers
        self.fisher = {name: torch.zeros_like(p) for name, p in params.items()}

    def forward(self, x: Tensor) -> Tensor:
        """Log-probabilities, recording each layer's (input, input version, output)."""
        self.calls: dict[nn.Module, list[tuple[Tensor, int, Tensor]]] = {}

        def record(module: nn.Module, inputs: tuple[Tensor, ...], out: Tensor) -> Tensor:
            a = inputs[0].detach()
            self.calls.setdefault(module, []).append((a, a._version, out))
            return out.clone()  # an in-place op downstream (ReLU(inplace=True)) must not hit `out`

        handles = [module.register_forward_hook(record) for module, _ in self.layers]
        try:
            log_p = torch.log_softmax(self.model(x), dim=-1)
        finally:
            for handle in handles:
                handle.remove()
        for module, _ in self.layers:
            calls = self.calls.get(module, [])
            if len(calls) != 1 or calls[0][0]._version != calls[0][1]:
                raise _NotPerLayer  # a layer called twice (weight sharing) or its input mutated
        return log_p

    def add(self, x: Tensor, log_p: Tensor, columns: list[Column]) -> None:
        inputs = [self.calls[module][0][0] for module, _ in self.layers]
        outputs = [self.calls[module][0][2] for module, _ in self.layers]
        dense = [
            isinstance(m, nn.Linear) and inputs[i].ndim == 2 for i, (m, _) in enumerate(self.layers)
        ]
        g2_sums: list[Any] = [0.0] * len(self.layers)  # Σ_columns g² of the dense layers
        unfolded: dict[int, Tensor] = {}
        for k, (labels, q) in enumerate(columns):
            loss = (q.sqrt() * log_p.gather(1, labels[:, None])[:, 0]).sum()
            grads = torch.autograd.grad(loss, outputs, retain_graph=k < len(columns) - 1)
            for i, g in enumerate(grads):
                module, names = self.layers[i]
                if dense[i]:  # per-sample weight gradient g_n a_nᵀ: sum its squares later
                    g2_sums[i] = g2_sums[i] + g**2
                    continue
                if i not in unfolded:
                    unfolded[i] = _unfold(module, inputs[i])
                self._add(names, *_squared_sums(module, unfolded[i], g))
        for i, (_, names) in enumerate(self.layers):
            if dense[i]:
                self._add(names, g2_sums[i].T @ inputs[i] ** 2, g2_sums[i].sum(0))

    def _add(self, names: dict[str, str], weight: Tensor, bias: Tensor | None) -> None:
        for local, value in (("weight", weight), ("bias", bias)):
            if local in names:
                fisher = self.fisher[names[local]]
                fisher += value.view_as(fisher)


def _unfold(module: nn.Module, a: Tensor) -> Tensor:
    """Layer input as (N, positions, fan_in), so that out = unfolded @ weightᵀ (+ bias)."""
    if isinstance(module, nn.Linear):
        return a.reshape(len(a), -1, a.shape[-1])
    cols = F.unfold(a, module.kernel_size, module.dilation, module.padding, module.stride)
    return cols.transpose(1, 2)


def _squared_sums(module: nn.Module, a: Tensor, g: Tensor) -> tuple[Tensor, Tensor | None]:
    """Σ_n of squared per-sample weight and bias gradients; a layer shares its weights over
    positions, so the per-sample gradient Σ_positions g aᵀ is formed before squaring."""
    if isinstance(module, nn.Conv2d):
        g = g.flatten(2).transpose(1, 2)
    g = g.reshape(len(g), -1, g.shape[-1])  # (N, positions, out)
    weight = (torch.bmm(g.transpose(1, 2), a) ** 2).sum(0)
    return weight, (g.sum(1) ** 2).sum(0) if module.bias is not None else None


class _FuncSums:
    """Σ_n q_n g_n² for any model, with per-sample gradients from ``torch.func.vmap(grad)``."""

    def __init__(self, model: nn.Module, params: dict[str, Tensor]):
        self.model = model
        self.theta = {name: p.detach() for name, p in params.items()}
        self.fisher = {name: torch.zeros_like(p) for name, p in params.items()}

        def log_likelihood(theta: dict[str, Tensor], x: Tensor, label: Tensor) -> Tensor:
            logits = functional_call(model, theta, (x[None],))
            return torch.log_softmax(logits[0], dim=-1).gather(0, label[None])[0]

        self.per_sample_grads = vmap(grad(log_likelihood), in_dims=(None, 0, 0))

    def forward(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return torch.log_softmax(self.model(x), dim=-1)

    def add(self, x: Tensor, log_p: Tensor, columns: list[Column]) -> None:
        for labels, q in columns:
            grads = self.per_sample_grads(self.theta, x, labels)
            for name, f in self.fisher.items():
                g = grads[name]
                f += (q.view(-1, *[1] * (g.ndim - 1)) * g**2).sum(0)


class _NotPerLayer(Exception):
    """The model cannot be handled layer by layer; use ``torch.func`` instead."""


def _layers(model: nn.Module, params: dict[str, Tensor]) -> list[Layer] | None:
    """Layers owning the trainable parameters, each with {local name: full name}; None if any
    trainable parameter is outside a plain Linear/Conv2d or shared between layers."""
    name_of = {id(p): name for name, p in params.items()}
    layers, owned = [], []
    for module in model.modules():
        names = {
            local: name_of[id(p)]
            for local, p in module.named_parameters(recurse=False)
            if id(p) in name_of
        }
        if not names:
            continue
        if not _is_plain_layer(module):
            return None
        layers.append((module, names))
        owned.extend(names.values())
    if sorted(owned) != sorted(params):
        return None
    return layers


def _is_plain_layer(module: nn.Module) -> bool:
    if type(module) is nn.Linear:
        return True
    return (
        type(module) is nn.Conv2d
        and module.groups == 1
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
    )


def _prepare(model: nn.Module, X: Any, y: Any, kind: str) -> tuple[Tensor, Tensor | None, dict]:
    """Validate and convert the inputs; return (X, y, trainable parameters by name)."""
    check_option(kind, "kind", KINDS)
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("model has no trainable parameters, so it has no Fisher information")
    if kind != "empirical":
        y = None
    elif y is None:
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
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode; restore each one's own previous mode afterwards."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
