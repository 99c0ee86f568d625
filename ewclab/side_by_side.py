"""K copies of a learner trained side by side: one forward, one backward, K results.

A λ sweep trains the same network from the same weights on the same batches K times,
changing only the penalty strength λ (or the importance F: plain SGD is λ = 0, the L2
baseline is F = 1, EWC is the Fisher). :class:`SideBySide` stacks the K copies'
parameters into one tensor per parameter, of shape ``(K, *shape)``, and runs every step
as one program:

    loss_k = CE(f(X; θ_k), y) + λ_k/2 · Σ_terms Σ_i F_ki (θ_ki − θ*_ki)²,
    one backward pass of Σ_k loss_k,

which gives every θ_k exactly its own gradient (loss_j does not depend on θ_k for j ≠ k),
then one optimiser step on the stacked tensors (SGD's and Adam's updates are elementwise,
so they are the K serial updates). The network is run with
``torch.func.vmap(functional_call(...))`` over the stacked parameters, so any learner
works (the MLP's linear layers become batched matrix products, convolutions grouped
ones). A hand-written stacked MLP (``torch.baddbmm``) ran its cross-entropy step within
~10 % of this on one CPU thread, either way (benchmarks/RESULTS.md, section 11), so there
is one path for every model. On a CPU, K copies still cost about K times one: the
arithmetic is not shared, only the per-step overhead (and, in a sweep, task A).

Each copy ends where its own serial run (a loop of ``learner.partial_fit`` on the same
batches) ends, up to float rounding (batched and single matrix products sum in different
orders); ``tests/test_side_by_side.py`` checks weights after every step and accuracies.

Dropout: a serial ``partial_fit`` draws its masks from torch's global generator. Here the
masks are drawn once per step from that generator and shared by all copies (vmap's
``randomness="same"``), so copy k sees exactly the masks its serial run sees when that
run starts from the same global generator state (as :func:`ewclab.experiment.run_sequence`
arranges by seeding torch before each task), and the generator advances as in one serial
run.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, vmap

from ewclab import snapshot
from ewclab.divergence import LARGE_STEP, LOSS_JUMP, DivergenceError
from ewclab.learner import Learner
from ewclab.validation import check_batch, check_int, check_param_groups, to_float_input

__all__ = ["SideBySide"]

logger = logging.getLogger(__name__)


class SideBySide:
    """Train K learners of one architecture as one batched program.

    Parameters
    ----------
    learners : sequence of Learner
        The K copies: same class, same architecture, same optimiser kind and settings,
        same device; they may differ in their weights, their optimiser state, their EWC
        strength λ and their penalty terms (importance F and anchor θ*). Their state is
        read once, here; the learners themselves are left alone until
        :meth:`write_back`.

    Attributes
    ----------
    lams : list of float
        Each copy's λ (``learner.ewc_lambda``).
    theta : dict of str to Tensor
        The stacked parameters, ``(K, *shape)`` each, keyed like ``named_parameters()``.

    Raises
    ------
    TypeError
        ``learners`` is not a non-empty sequence of :class:`~ewclab.learner.Learner`.
    ValueError
        The learners differ in class, architecture, parameter shapes, device or optimiser
        settings; an optimiser setting is out of range; or a copy's λ is past SGD's
        stability bound (:class:`~ewclab.divergence.DivergenceError`, naming the copy).

    Examples
    --------
    >>> copies = [copy.deepcopy(model) for _ in range(3)]          # doctest: +SKIP
    >>> for c, lam in zip(copies, [0.0, 100.0, 1000.0]):            # doctest: +SKIP
    ...     c.ewc_lambda = lam
    >>> side = SideBySide(copies)                                   # doctest: +SKIP
    >>> for X, y in batches:                                        # doctest: +SKIP
    ...     losses = side.partial_fit(X, y)                         # (3,)
    >>> side.write_back()   # each copy now holds its own run's weights  # doctest: +SKIP
    """

    def __init__(self, learners: Sequence[Learner]):
        if isinstance(learners, Learner) or not isinstance(learners, Sequence):
            raise TypeError(f"learners must be a sequence of Learner, got {learners!r}")
        learners = list(learners)
        if not learners or not all(isinstance(m, Learner) for m in learners):
            raise TypeError(f"learners must be a non-empty sequence of Learner, got {learners!r}")
        first = learners[0]
        names = _trainable(first)
        hyper = _hyper(first.optimizer)
        for k, m in enumerate(learners):
            _check_same(k, m, first, hyper)
            check_param_groups(m.optimizer.param_groups)
            if m.ewc.terms and m.ewc_lambda:
                try:
                    m.check_stability()
                except DivergenceError as err:
                    raise DivergenceError(f"copy {k} (λ = {m.ewc_lambda:g}): {err}") from None
        self.learners = learners
        self.lams = [float(m.ewc_lambda) for m in learners]
        # the network run functionally: a private copy, so the learners stay untouched
        self.template = copy.deepcopy(first)
        with torch.no_grad():
            self.theta = {n: torch.stack([dict(m.named_parameters())[n].detach()
                                          for m in learners]).requires_grad_()
                          for n in names}  # (K, *shape) each
        self._terms = _stack_terms(learners, self.theta)  # [(F, θ*)], (K, *shape) each
        self._lam = torch.tensor(self.lams, dtype=torch.float32, device=first.device)  # (K,)
        # λ_k F_k per term, what the gradient needs: [(λF, θ*)], (K, *shape) each
        self._stiffness = [
            ({n: f * self._lam.view(-1, *[1] * (f.dim() - 1)) for n, f in fisher.items()}, anchor)
            for fisher, anchor in self._terms
        ]
        self.optimizer = type(first.optimizer)(list(self.theta.values()))
        self.optimizer.param_groups[0].update(hyper)
        _stack_state(self.optimizer, learners, names, self.theta)
        guards = [m.step_guards for m in learners]
        self._last_loss: list[float | None] = [last for _, last in guards]
        self._large_steps = any(large for large, _ in guards)
        self._buffers: dict[str, tuple[Tensor, Tensor, Tensor]] = {}  # d, F·d, gradient
        self._loss = vmap(self._cross_entropy, in_dims=(0, None, None), randomness="same")
        self._logits = vmap(self._forward, in_dims=(0, None), randomness="same")

    def __len__(self) -> int:
        return len(self.learners)

    def __repr__(self) -> str:
        return (f"SideBySide({len(self)} x {type(self.template).__name__}, "
                f"λ = {[f'{lam:g}' for lam in self.lams]})")

    # -- the per-copy loss --------------------------------------------------------------------
    def _forward(self, theta: dict[str, Tensor], X: Tensor) -> Tensor:
        return functional_call(self.template, theta, (X,))  # (N, classes)

    def _cross_entropy(self, theta: dict[str, Tensor], X: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(self._forward(theta, X), y)  # ()

    def penalty(self) -> Tensor:
        """Each copy's penalty λ_k/2 · Σ_terms Σ_i F_ki (θ_ki − θ*_ki)², shape ``(K,)``.

        Differentiable in :attr:`theta`; copy k's value is what ``learners[k].ewc.penalty()``
        gives for the same weights.
        """
        total = torch.zeros_like(self._lam)  # (K,)
        for fisher, anchor in self._terms:
            for name, theta in self.theta.items():
                d = theta - anchor[name]  # (K, *shape)
                total = total + (fisher[name] * d**2).flatten(1).sum(1)  # (K,)
        return 0.5 * self._lam * total  # (K,)

    def _penalty_into_grads(self) -> Tensor:
        """The fast path of :meth:`penalty` (same value, tested): return it, shape ``(K,)``,
        and write its gradient g_k = Σ_terms λ_k F_k (θ_k − θ*_k) into each ``θ.grad``, so
        that the backward pass of the cross-entropy adds to it. The value is
        ½ Σ_terms (λ_k F_k d_k)·d_k with d = θ − θ*: three passes over the weights per
        term, into buffers allocated once (no fresh K-copy tensors and their page faults
        per step). Call under no_grad.
        """
        total = torch.zeros_like(self._lam)  # (K,)
        for name, theta in self.theta.items():
            if name not in self._buffers:
                self._buffers[name] = tuple(torch.empty_like(theta) for _ in range(3))
            d, gd, grad = self._buffers[name]  # (K, *shape) each
            theta.grad = grad
            if not self._terms:
                grad.zero_()
            for t, (stiffness, anchor) in enumerate(self._stiffness):
                torch.sub(theta, anchor[name], out=d)  # (K, *shape)
                out = grad if t == 0 else gd
                torch.mul(d, stiffness[name], out=out)  # λ F (θ − θ*), (K, *shape)
                total += torch.stack([torch.dot(a.view(-1), b.view(-1))
                                      for a, b in zip(out, d, strict=True)])  # (K,)
                if t > 0:
                    grad += gd
        return 0.5 * total  # (K,)

    # -- training ------------------------------------------------------------------------------
    def partial_fit(self, X: Any, y: Any) -> np.ndarray:
        """One optimisation step of every copy on the batch ``(X, y)``; return the K losses.

        Copy k's step is ``learners[k].partial_fit(X, y)``'s (cross-entropy + its penalty,
        its optimiser), with the same guards: when the call raises, no copy has changed
        and torch's global generator is as it was.

        Raises
        ------
        TypeError, ValueError
            Bad input (see :meth:`ewclab.learner.Learner.prepare_inputs`).
        DivergenceError
            Some copy's loss is not finite or jumped :data:`~ewclab.divergence.LOSS_JUMP`
            times, or its gradients or updated weights are not finite; the message names
            the copy and its λ.
        """
        if y is None:
            raise ValueError("y (the labels) is required, got None")
        X, y = self.template.prepare_inputs(X, y)
        with snapshot.global_rng_kept_on_error(self.template.device):
            self.template.train()
            return self._step(X, y)

    def _step(self, X: Tensor, y: Tensor) -> np.ndarray:
        with torch.no_grad():
            penalty = self._penalty_into_grads()  # (K,); each θ_k.grad = λ_k F (θ_k − θ*_k)
        cross_entropy = self._loss(self.theta, X, y)  # (K,)
        values = (cross_entropy.detach() + penalty).tolist()
        try:
            for k, value in enumerate(values):
                last = self._last_loss[k]
                if not math.isfinite(value):
                    raise DivergenceError(self._diverged(k, f"the loss is {value}"))
                if last is not None and value > LOSS_JUMP * max(last, 1.0):
                    self._last_loss[k] = None  # refused once; then let it train (as Learner)
                    raise DivergenceError(self._diverged(
                        k, f"the loss jumped from {last:.3g} to {value:.3g} in one step"))
            cross_entropy.sum().backward()  # adds each copy's own CE gradient to its .grad
            g_max = _max_abs_per_copy([p.grad for p in self.theta.values()])  # (K,)
            bad = [k for k, g in enumerate(g_max) if not math.isfinite(g)]
            if bad:
                raise DivergenceError(self._diverged(bad[0], "the gradients are not finite"))
        except DivergenceError:
            self.optimizer.zero_grad(set_to_none=True)
            raise
        lr = self.optimizer.param_groups[0]["lr"]
        self._large_steps = self._large_steps or lr * max(max(g_max), 1.0) > LARGE_STEP
        params = list(self.theta.values())
        undo = (snapshot.take(params, self.optimizer, torch.Generator())
                if self._large_steps else None)
        self.optimizer.step()
        if undo is not None:
            after = _max_abs_per_copy(params)
            bad = [k for k, v in enumerate(after) if not math.isfinite(v)]
            if bad:
                snapshot.restore(undo, self.optimizer, torch.Generator())
                raise DivergenceError(self._diverged(bad[0], "the step made the weights "
                                                     "non-finite"))
        self._last_loss = list(values)
        return np.asarray(values)

    def _diverged(self, k: int, what: str) -> str:
        return (f"training diverged in copy {k} (λ = {self.lams[k]:g}): {what}; no copy "
                f"changed. Lower lr (now {self.optimizer.param_groups[0]['lr']}) or that λ.")

    # -- inference -------------------------------------------------------------------------------
    def score(self, X: Any, y: Any, batch_size: int = 256) -> np.ndarray:
        """Each copy's accuracy on ``(X, y)``, shape ``(K,)``, in [0, 1] (eval mode, no grad).

        Copy k's value is ``learners[k].score(X, y)`` for the same weights.
        """
        batch_size = check_int(batch_size, "batch_size", low=1)
        if y is None:
            raise ValueError("y (the labels) is required, got None")
        X, y = check_batch(X, y, self.template.spec)
        spec, device = self.template.spec, self.template.device
        y = y.to(device, torch.long)
        correct = torch.zeros(len(self), dtype=torch.long)  # (K,)
        self.template.eval()
        with torch.no_grad():
            for xb, yb in zip(X.split(batch_size), y.split(batch_size), strict=True):
                xb = to_float_input(xb, spec.channels, device)  # (n, C, H, W)
                proba = torch.softmax(self._logits(self.theta, xb), dim=2)  # (K, n, classes)
                correct += (proba.argmax(2) == yb).sum(1).cpu()  # (K,)
        return (correct.double() / len(y)).numpy()

    # -- the copies as learners ------------------------------------------------------------------
    def write_back(self) -> list[Learner]:
        """Copy each copy's weights, optimiser state and step guards into its learner;
        return the learners (each now as its own serial run would have left it)."""
        names = list(self.theta)
        with torch.no_grad():
            for k, m in enumerate(self.learners):
                params = dict(m.named_parameters())
                for name in names:
                    params[name].copy_(self.theta[name][k])
                m.optimizer.state.clear()
                for name, stacked in self.theta.items():
                    state = self.optimizer.state.get(stacked)
                    if state:
                        m.optimizer.state[params[name]] = {
                            key: _copy_slice(value, k) for key, value in state.items()
                        }
                m.step_guards = (self._large_steps, self._last_loss[k])
        return self.learners


def _trainable(model: Learner) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def _hyper(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimiser's settings (its one parameter group, without the parameters)."""
    if len(optimizer.param_groups) != 1:
        raise ValueError(f"learners must have one optimiser parameter group, got "
                         f"{len(optimizer.param_groups)}")
    return {k: v for k, v in optimizer.param_groups[0].items() if k != "params"}


#: Learner options copies may differ in (the optimiser's settings are compared on their own).
_PER_COPY = frozenset({"ewc_lambda", "ewc_mode", "ewc_gamma", "fisher", "optimizer", "lr",
                       "momentum", "device", "seed", "buffer_per_task"})


def _arch(m: Learner) -> dict[str, Any]:
    """The architecture part of a learner's ``config``."""
    return {key: value for key, value in m.config.items() if key not in _PER_COPY}


def _check_same(k: int, m: Learner, first: Learner, hyper: dict) -> None:
    """Refuse a copy that is not the same network with the same optimiser as copy 0."""
    what = None
    if type(m) is not type(first):
        what = f"class {type(m).__name__}, not {type(first).__name__}"
    elif _arch(m) != _arch(first):
        what = f"architecture {_arch(m)!r}, not {_arch(first)!r}"
    elif [(n, p.shape) for n, p in m.named_parameters() if p.requires_grad] != [
            (n, p.shape) for n, p in first.named_parameters() if p.requires_grad]:
        what = "other parameter names or shapes"
    elif m.device != first.device:
        what = f"device {m.device}, not {first.device}"
    elif type(m.optimizer) is not type(first.optimizer):
        what = f"optimiser {type(m.optimizer).__name__}, not {type(first.optimizer).__name__}"
    elif _hyper(m.optimizer) != hyper:
        what = f"optimiser settings {_hyper(m.optimizer)!r}, not {hyper!r}"
    if what is not None:
        raise ValueError(f"learners[{k}] must be the same network and optimiser as "
                         f"learners[0], got {what}")


def _stack_terms(
    learners: list[Learner], theta: dict[str, Tensor]
) -> list[tuple[dict[str, Tensor], dict[str, Tensor]]]:
    """Each term index's (F, θ*) stacked over copies; a copy with fewer terms gets F = 0."""
    n_terms = max(len(m.ewc.terms) for m in learners)
    terms = []
    for t in range(n_terms):
        fisher, anchor = {}, {}
        for name, stacked in theta.items():
            fs, anchors = [], []
            for k, m in enumerate(learners):
                if t < len(m.ewc.terms):
                    fs.append(m.ewc.terms[t].importance[name])
                    anchors.append(m.ewc.terms[t].anchor[name])
                else:
                    fs.append(torch.zeros_like(stacked[k]))
                    anchors.append(torch.zeros_like(stacked[k]))
            fisher[name] = torch.stack(fs).to(stacked)  # (K, *shape)
            anchor[name] = torch.stack(anchors).to(stacked)  # (K, *shape)
        terms.append((fisher, anchor))
    return terms


def _stack_state(
    optimizer: torch.optim.Optimizer, learners: list[Learner], names: list[str],
    theta: dict[str, Tensor],
) -> None:
    """Stack the learners' optimiser state (momentum, Adam's moments) into ``optimizer``."""
    for name in names:
        states = [m.optimizer.state.get(dict(m.named_parameters())[name]) or {}
                  for m in learners]
        if not any(states):
            continue
        keys = set(states[0])
        if not all(s and set(s) == keys for s in states):
            raise ValueError(f"learners must all have optimiser state for {name!r} or none")
        stacked: dict[str, Any] = {}
        for key in keys:
            values = [s[key] for s in states]
            if torch.is_tensor(values[0]) and values[0].dim() > 0:
                stacked[key] = torch.stack([v.detach() for v in values])  # (K, *shape)
            elif all(_equal(v, values[0]) for v in values):
                stacked[key] = copy.deepcopy(values[0])  # e.g. Adam's step count
            else:
                raise ValueError(f"learners must share the optimiser's {key!r} for {name!r}, "
                                 f"got {values!r}")
        optimizer.state[theta[name]] = stacked


def _equal(a: Any, b: Any) -> bool:
    if torch.is_tensor(a) and torch.is_tensor(b):
        return bool(torch.equal(a, b))
    return bool(a == b)


def _copy_slice(value: Any, k: int) -> Any:
    if torch.is_tensor(value) and value.dim() > 0:
        return value[k].detach().clone()
    return copy.deepcopy(value)


def _max_abs_per_copy(tensors: list[Tensor | None]) -> list[float]:
    """Each copy's largest absolute value over ``tensors`` (``(K, ...)`` each); NaN if any
    of its values is NaN."""
    # one aminmax per copy and tensor: much faster on a CPU than a reduction over dim 1
    per = [torch.stack([torch.stack(torch.aminmax(row)) for row in t.detach()])  # (K, 2)
           for t in tensors if t is not None]
    return torch.stack(per).abs().amax((0, 2)).tolist() if per else []  # (K,), NaN kept
