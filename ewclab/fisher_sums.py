"""Sums of squared per-sample gradients in batched passes: the fast path of
:func:`ewclab.fisher.fisher_diagonal`.

Both estimators answer one question for a batch: given label columns (labels c_n and
weights q_n, one backward pass each), what is Σ_n q_n (∂ log p(c_n|x_n)/∂θ_i)² for every
weight? :func:`ewclab.fisher.fisher_diagonal_reference` answers it one sample at a time.

- :class:`LayerSums`, for networks whose trainable weights all sit in layers listed in
  :data:`SQUARES` (``nn.Linear``, ``nn.Conv2d``): a layer's per-sample weight gradient is
  the outer product of its output gradient g_n and its input a_n (summed over positions
  for a convolution). For a dense layer the sum of its squares over samples is one matrix
  product, (G∘G)ᵀ(A∘A) (:class:`DenseSquares`); for a convolution the per-sample gradients
  are formed a few samples at a time and squared while they are in the CPU's cache
  (:class:`SharedSquares`). One forward pass builds each layer's accumulator from its
  input; each column is one ``autograd.grad`` to the layers' outputs.
- :class:`FuncSums`, for any other network: per-sample gradients from
  ``torch.func.vmap(grad(...))``.

:func:`path` says which one a model gets; ``fisher_diagonal`` logs it at DEBUG.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

# (labels, weights) for one backward pass over a batch: Σ_n weights_n · ∇ log p(labels_n|x_n)²
Column = tuple[Tensor, Tensor]
# numbers in one chunk of per-sample gradients or input windows: 2 MiB of float32, about one
# CPU core's L2 cache (on bench_fisher.py's models 2**17 to 2**19 ran equally fast, 2**21
# up to 1.2× slower)
CHUNK_FLOATS = 2**19
# a layer and its trainable parameters as {local name: name in the model}
Layer = tuple[nn.Module, dict[str, str]]


class DenseSquares:
    """``nn.Linear`` on (N, in) inputs: Σ_n (g_n a_nᵀ)² = (G∘G)ᵀ(A∘A), and the bias's Σ_n g_n².

    The columns' squared output gradients are summed first (one matrix product at the end).
    """

    def __init__(self, module: nn.Linear, a: Tensor):
        self.a2 = a * a  # A∘A, (N, in)
        self.g2: Tensor | float = 0.0  # Σ_columns g², (N, out)

    def add(self, g: Tensor) -> None:
        """One column's output gradients g, (N, out)."""
        self.g2 = self.g2 + g * g

    def result(self) -> tuple[Tensor, Tensor]:
        """(Σ_n squared weight gradients (out, in), Σ_n squared bias gradients (out,))."""
        return self.g2.T @ self.a2, self.g2.sum(0)


class SharedSquares:
    """A layer whose weights are shared over positions (``nn.Conv2d``; ``nn.Linear`` on
    (N, ..., in) inputs): Σ_n (G_n A_n)², where G_n (out, positions) holds sample n's output
    gradients and A_n (positions, width) the input the layer saw at each position (width:
    in for a linear layer, kh·kw·in for a convolution), and the bias's Σ_n (Σ_positions g_n)².

    The per-sample gradients G_n A_n are formed a few samples at a time (at most
    :data:`CHUNK_FLOATS` numbers) and squared while they are still in the CPU's cache.
    """

    def __init__(self, module: nn.Linear | nn.Conv2d, a: Tensor):
        self.inputs = Windows(module, a) if isinstance(module, nn.Conv2d) else Positions(a)
        out, width = module.weight.shape[0], module.weight[0].numel()
        positions = self.inputs(slice(0, 1)).shape[1]
        self.chunk = max(1, CHUNK_FLOATS // (width * max(out, positions)))  # samples
        self.weight = a.new_zeros(out, width)
        self.bias = a.new_zeros(out)

    def add(self, g: Tensor) -> None:
        """One column's output gradients: (N, out, H, W) for a convolution, (N, ..., out)."""
        g = self.inputs.gradients(g)  # (N, out, positions)
        for start in range(0, len(g), self.chunk):
            samples = slice(start, start + self.chunk)
            per_sample = torch.bmm(g[samples], self.inputs(samples))  # (n, out, width)
            self.weight += (per_sample * per_sample).sum(0)
        self.bias += (g.sum(2) ** 2).sum(0)  # (out,)

    def result(self) -> tuple[Tensor, Tensor]:
        """(Σ_n squared weight gradients, shaped like the weight; the same for the bias)."""
        return self.inputs.weight_layout(self.weight), self.bias


class Positions:
    """A linear layer's input (N, ..., in), every position but the last axis in a row."""

    def __init__(self, a: Tensor):
        self.a = a.reshape(len(a), -1, a.shape[-1]).clone()  # (N, positions, in), a copy

    def __call__(self, samples: slice) -> Tensor:
        """A_n of the given samples, (n, positions, in)."""
        return self.a[samples]

    def gradients(self, g: Tensor) -> Tensor:
        """The output gradients (N, ..., out) as G_n, (N, out, positions)."""
        return g.reshape(len(g), -1, g.shape[-1]).transpose(1, 2)

    def weight_layout(self, w: Tensor) -> Tensor:
        return w  # (out, in)


class Windows:
    """A convolution's input as the window under each output position (the numbers
    ``F.unfold`` gives, kernel positions and channels in the order (kh, kw, in)), cut from
    strided views of a zero-padded, channels-last copy of it."""

    def __init__(self, conv: nn.Conv2d, a: Tensor):
        self.conv = conv
        (ph, pw), (n, c, h, w) = conv.padding, a.shape
        self.a = a.new_zeros(n, h + 2 * ph, w + 2 * pw, c)  # (N, H + 2ph, W + 2pw, in)
        self.a[:, ph : ph + h, pw : pw + w] = a.permute(0, 2, 3, 1)

    def __call__(self, samples: slice) -> Tensor:
        """A_n of the given samples, (n, Ho·Wo, kh·kw·in): one copy of the windows."""
        (kh, kw), (dh, dw), (sh, sw) = self.conv.kernel_size, self.conv.dilation, self.conv.stride
        a = self.a[samples]  # (n, H + 2ph, W + 2pw, in)
        n, c = len(a), a.shape[-1]
        windows = a.unfold(1, dh * (kh - 1) + 1, sh).unfold(2, dw * (kw - 1) + 1, sw)
        windows = windows[..., ::dh, ::dw]  # (n, Ho, Wo, in, kh, kw), a view
        # one copy, in the order of the longest runs of numbers that are neighbours in memory:
        if c > 1:  # a window row's kw·in numbers (channels last)
            return windows.permute(0, 1, 2, 4, 5, 3).reshape(n, -1, kh * kw * c)
        # one channel: a row of output positions (Wo numbers at stride 1), then transposed
        return windows.permute(0, 4, 5, 3, 1, 2).reshape(n, kh * kw, -1).transpose(1, 2)

    def gradients(self, g: Tensor) -> Tensor:
        """The output gradients (N, out, Ho, Wo) as G_n, (N, out, Ho·Wo)."""
        return g.flatten(2)

    def weight_layout(self, w: Tensor) -> Tensor:
        out, c, kh, kw = self.conv.weight.shape
        return w.view(out, kh, kw, c).permute(0, 3, 1, 2)  # (out, in, kh, kw)


#: An accumulator of one layer's Σ_n q_n g_n² over the columns of a batch.
Squares = DenseSquares | SharedSquares


def _linear(module: nn.Module, a: Tensor) -> Squares:
    return DenseSquares(module, a) if a.ndim == 2 else SharedSquares(module, a)


def _any(module: nn.Module) -> bool:
    return True


def _plain_conv2d(module: nn.Module) -> bool:
    return (module.groups == 1 and module.padding_mode == "zeros"
            and not isinstance(module.padding, str))


#: Layer type -> (does this layer qualify, its squared-gradient accumulator from its input).
SQUARES: dict[type[nn.Module], tuple[Callable[[nn.Module], bool],
                                     Callable[[Any, Tensor], Squares]]] = {
    nn.Linear: (_any, _linear),
    nn.Conv2d: (_plain_conv2d, SharedSquares),
}


class LayerSums:
    """Σ_n q_n g_n² for networks whose weights all sit in :data:`SQUARES` layers."""

    def __init__(self, model: nn.Module, layers: list[Layer], params: dict[str, Tensor]):
        self.model = model
        self.layers = layers
        self.fisher = {name: torch.zeros_like(p) for name, p in params.items()}

    def record(self, x: Tensor) -> tuple[Tensor, dict[nn.Module, list[tuple[Squares, Tensor]]]]:
        """Log-probabilities of ``x``, and each layer's calls as (accumulator, output) pairs.

        Each accumulator is built from the layer's input as the layer saw it (it keeps its
        own copy: a later in-place operation cannot change it); each output is the tensor
        the gradients are taken to, and the network continues with a copy of it (an in-place
        ``ReLU`` downstream cannot change it either).
        """
        calls: dict[nn.Module, list[tuple[Squares, Tensor]]] = {m: [] for m, _ in self.layers}

        def keep(module: nn.Module, inputs: tuple[Tensor, ...], out: Tensor) -> Tensor:
            _, accumulator = SQUARES[type(module)]
            calls[module].append((accumulator(module, inputs[0].detach()), out))
            return out.clone()

        handles = [module.register_forward_hook(keep) for module, _ in self.layers]
        try:
            log_p = torch.log_softmax(self.model(x), dim=-1)
        finally:
            for handle in handles:
                handle.remove()
        return log_p, calls

    def forward(self, x: Tensor) -> Tensor:
        """Log-probabilities of the batch ``x``, remembering what :meth:`add` needs."""
        self.log_p, self.calls = self.record(x)
        return self.log_p

    def add(self, x: Tensor, log_p: Tensor, columns: list[Column]) -> None:
        """Add Σ_n q_n g_n² of every column to :attr:`fisher`."""
        squares = [acc for module, _ in self.layers for acc, _ in self.calls[module]]
        outputs = [out for module, _ in self.layers for _, out in self.calls[module]]
        for k, (labels, q) in enumerate(columns):
            loss = (q.sqrt() * log_p.gather(1, labels[:, None])[:, 0]).sum()
            grads = torch.autograd.grad(loss, outputs, retain_graph=k < len(columns) - 1)
            for acc, g in zip(squares, grads, strict=True):
                acc.add(g)
        for (_, names), acc in zip(self.layers, squares, strict=True):
            for local, value in zip(("weight", "bias"), acc.result(), strict=True):
                if local in names:
                    fisher = self.fisher[names[local]]
                    fisher += value.view_as(fisher)


class FuncSums:
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


def layers(model: nn.Module, params: dict[str, Tensor]) -> list[Layer] | None:
    """The layers owning the trainable parameters, each with {local name: full name}; None
    when a trainable parameter sits outside a layer :data:`SQUARES` covers."""
    name_of = {id(p): name for name, p in params.items()}
    found, owned = [], []
    for module in model.modules():
        names = {local: name_of[id(p)] for local, p in module.named_parameters(recurse=False)
                 if id(p) in name_of}
        if not names:
            continue
        if type(module) not in SQUARES or not SQUARES[type(module)][0](module):
            return None
        found.append((module, names))
        owned.extend(names.values())
    return found if sorted(owned) == sorted(params) else None


def path(model: nn.Module, params: dict[str, Tensor], x: Tensor) -> str:
    """``"per-layer"`` (:class:`LayerSums`) or ``"torch.func"`` (:class:`FuncSums`): the
    per-layer path needs every trainable weight in a covered layer, and each such layer
    called once per forward pass (a layer used twice shares its weights across calls), which
    one forward pass of the sample ``x`` (shape (1, ...)) shows."""
    found = layers(model, params)
    if found is None:
        return "torch.func"
    with torch.no_grad():
        _, calls = LayerSums(model, found, params).record(x)
    return "per-layer" if all(len(c) == 1 for c in calls.values()) else "torch.func"
