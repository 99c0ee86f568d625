"""The learner API every ewclab network shares: ``partial_fit``, ``fit``, ``predict``,
``score``, ``consolidate``, ``save`` / ``load`` (scikit-learn manners, seed-compatible).

A subclass only says which layers it has (`build`) and how they compute (`forward`);
training, EWC, validation and persistence live here. The training loss is
cross-entropy + ``model.ewc.penalty()``, where the penalty is
``ewc_lambda / 2 * sum_tasks sum_i F_i (theta_i - theta*_i)^2``; a step adds the penalty's
gradient ``ewc_lambda * F_i (theta_i - theta*_i)`` in closed form
(:meth:`ewclab.ewc.EWC.add_gradient`) instead of building its autograd graph.

Every call either succeeds or raises with all state (weights, optimiser, EWC, buffer)
unchanged: inputs and optimiser settings are checked before anything is touched; a λ
past SGD's stability bound is refused before the step (:meth:`Learner.check_stability`,
λ · max F cached); a step whose loss is not finite, or jumped (:mod:`ewclab.divergence`),
or whose gradients are not finite, is refused before the optimiser runs; ``fit`` puts
back the state it started from when any of its steps fails, so a diverging ``fit``
leaves a model that a smaller lr or λ can train. With finite gradients an SGD or Adam
step can only overflow when ``lr * max|gradient|`` is astronomically large (a weight
moves by at most ``lr * max|g| / (1 - momentum)`` for SGD, a few ``lr`` for Adam, whose
second moment overflows only for ``|g| > 1e19``). So ordinary steps pay only for one
min/max pass over the gradients; from the first "large" step on, each step first copies
weights and optimiser state into preallocated buffers and is undone if anything came
out non-finite.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ewclab import persist, snapshot
from ewclab.buffer import TaskBuffer
from ewclab.divergence import (
    LARGE_STEP,
    LOSS_JUMP,
    DivergenceError,
    max_abs,
    sgd_curvature_limit,
)
from ewclab.ewc import EWC, MODES, check_lam
from ewclab.fisher import KINDS
from ewclab.validation import (
    InputSpec,
    check_batch,
    check_bool,
    check_device,
    check_int,
    check_lr,
    check_momentum,
    check_option,
    check_param_groups,
    check_real,
    check_seed,
    to_float_input,
)

logger = logging.getLogger(__name__)

#: Learning rate used when ``lr=None``, per optimiser.
DEFAULT_LR = {"sgd": 0.01, "adam": 0.001}

#: Default EWC strength λ (penalty = λ/2 · Σ F_i (θ_i − θ*_i)², F = mean per-sample squared
#: gradient of the log-likelihood).
DEFAULT_EWC_LAMBDA = 100.0


class Learner(nn.Module):
    """Base class of the ewclab networks (an ``nn.Module`` whose forward returns logits).

    Subclasses implement ``build(**arch) -> InputSpec`` (create the layers) and
    ``forward``, and pass their architecture keywords as ``arch``.

    Parameters
    ----------
    arch : dict
        The architecture keywords of the subclass (stored for ``save`` / ``load``).
    ewc_lambda : float, default 100.0
        EWC strength λ >= 0; ``0`` is plain training.
    ewc_mode : {"separate", "online", "l2"}, default "separate"
        One penalty term per task, one running term folded with ``ewc_gamma``, or F = 1.
    ewc_gamma : float, default 1.0
        Decay of the old Fisher in online mode, in (0, 1].
    fisher : {"exact", "empirical", "sampled"}, default "exact"
        Default Fisher kind for ``consolidate``: the Fisher of Kirkpatrick et al. (labels
        weighted by the model's own p(y|x)), as in :func:`ewclab.fisher.fisher_diagonal`
        and the settings table; "empirical" uses the labels y given to ``consolidate``.
    optimizer : {"sgd", "adam"}, default "sgd"
        ``torch.optim.SGD`` (with ``momentum``) or ``torch.optim.Adam``.
    lr : float or None, default None
        Learning rate; ``None`` takes :data:`DEFAULT_LR` (SGD 0.01, Adam 0.001).
    momentum : float, default 0.9
        SGD momentum in [0, 1); ignored by Adam.
    device : str or torch.device, default "auto"
        ``"auto"`` is CUDA when available, else CPU.
    seed : int in [0, 2**64) or None, default None
        Seeds the weight initialisation, ``fit``'s shuffling and the sampled Fisher
        without touching the global RNG. Dropout draws from the global RNG
        (``torch.manual_seed``).
    buffer_per_task : int, default 200
        Capacity per task of ``self.buffer`` (a :class:`~ewclab.buffer.TaskBuffer`).
    """

    def __init__(
        self,
        arch: dict[str, Any],
        *,
        ewc_lambda: float = DEFAULT_EWC_LAMBDA,
        ewc_mode: str = "separate",
        ewc_gamma: float = 1.0,
        fisher: str = "exact",
        optimizer: str = "sgd",
        lr: float | None = None,
        momentum: float = 0.9,
        device: str | torch.device = "auto",
        seed: int | None = None,
        buffer_per_task: int = 200,
    ):
        super().__init__()
        # every setting is checked before a layer is built or a random number drawn
        optimizer = check_option(optimizer, "optimizer", tuple(DEFAULT_LR))
        lr = DEFAULT_LR[optimizer] if lr is None else check_lr(lr, "lr")
        momentum = check_momentum(momentum, "momentum")
        seed = check_seed(seed)
        ewc_lambda = check_lam(ewc_lambda, "ewc_lambda")
        ewc_mode = check_option(ewc_mode, "ewc_mode", MODES)
        ewc_gamma = check_real(ewc_gamma, "ewc_gamma", low=0, low_open=True, high=1)
        fisher = check_option(fisher, "fisher", KINDS)
        buffer_per_task = check_int(buffer_per_task, "buffer_per_task", low=1)
        self.device = check_device(device)
        self.config = {
            **arch,
            "ewc_lambda": ewc_lambda, "ewc_mode": ewc_mode, "ewc_gamma": ewc_gamma,
            "fisher": fisher, "optimizer": optimizer, "lr": float(lr),
            "momentum": float(momentum), "device": str(device), "seed": seed,
            "buffer_per_task": buffer_per_task,
        }
        # layers are created on the CPU (CUDA's RNG is left alone), or only as shapes for
        # device="meta" (how ewclab.persist checks a file's sizes before allocating)
        meta = torch.device("meta") if self.device.type == "meta" else nullcontext()
        with torch.random.fork_rng(devices=[], enabled=seed is not None), meta:
            if seed is not None:
                torch.random.default_generator.manual_seed(seed)
            self.spec: InputSpec = self.build(**arch)
        self.to(self.device)
        self._params = [p for p in self.parameters() if p.requires_grad]
        if optimizer == "sgd":
            self.optimizer = torch.optim.SGD(self._params, lr=lr, momentum=momentum)
        else:
            self.optimizer = torch.optim.Adam(self._params, lr=lr)
        shuffle_seed = seed if seed is not None else int(torch.randint(2**62, ()).item())
        #: The model's own random source: ``fit``'s shuffling and the sampled Fisher.
        self.shuffle_rng = torch.Generator().manual_seed(shuffle_seed)
        self.ewc = EWC(self, lam=ewc_lambda, mode=ewc_mode, gamma=ewc_gamma, fisher=fisher,
                       generator=self.shuffle_rng)
        self.buffer = TaskBuffer(per_task=buffer_per_task, seed=0 if seed is None else seed,
                                 num_classes=self.spec.num_classes)
        self._undo: list[Tensor] | None = None  # the per-step undo buffers, once needed
        self._large_steps = False
        self._last_loss: float | None = None  # the previous accepted step's loss

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Register every subclass with :mod:`ewclab.persist`, so it can be saved and
        loaded (a user's own learner included)."""
        super().__init_subclass__(**kwargs)
        persist.register(cls)

    def build(self, **arch: Any) -> InputSpec:
        """Create the layers; return what input the network accepts."""
        raise NotImplementedError

    # -- the EWC strength, read and written through the EWC object ------------------------
    @property
    def ewc_lambda(self) -> float:
        """EWC strength λ (``self.ewc.lam``); setting a λ that is negative, not finite or
        beyond float32's range raises (a λ past SGD's stability bound is refused by the
        next ``partial_fit`` / ``fit``, see :meth:`check_stability`)."""
        return self.ewc.lam

    @ewc_lambda.setter
    def ewc_lambda(self, lam: float) -> None:
        self.ewc.lam = lam

    @property
    def step_guards(self) -> tuple[bool, float | None]:
        """The state of the step's divergence checks: (whether steps are large enough to be
        undone on a non-finite result, the last accepted step's loss). For code that trains
        the learner's weights elsewhere and hands them back (``ewclab.side_by_side``)."""
        return self._large_steps, self._last_loss

    @step_guards.setter
    def step_guards(self, guards: tuple[bool, float | None]) -> None:
        large, last = guards
        self._large_steps = check_bool(large, "step_guards[0]")
        self._last_loss = None if last is None else check_real(last, "step_guards[1]")

    # -- stability of SGD on the penalty -----------------------------------------------------
    def stability_limit(self) -> float:
        """The largest penalty curvature SGD can follow: 2(1 + momentum) / lr (inf for Adam).

        Heavy-ball SGD on a quadratic of curvature h converges only while
        lr · h < 2(1 + momentum); the penalty's curvature is :meth:`EWC.stiffness`.
        """
        if not isinstance(self.optimizer, torch.optim.SGD):
            return math.inf
        group = self.optimizer.param_groups[0]
        return sgd_curvature_limit(group["lr"], group["momentum"])

    def check_stability(self) -> None:
        """Raise :class:`DivergenceError` (a ``ValueError``) when λ is too large for SGD.

        The check is lr · λ · max F < 2(1 + momentum) (see :meth:`stability_limit`): past
        it the penalty alone makes the weights oscillate with growing amplitude.
        ``partial_fit`` and ``fit`` run it before every call (λ · max F is cached until λ
        or the consolidated tasks change); nothing is changed.
        """
        stiffness, limit = self.ewc.stiffness(), self.stability_limit()
        if stiffness >= limit:
            group = self.optimizer.param_groups[0]
            largest = self.ewc_lambda * limit / stiffness
            raise DivergenceError(
                f"ewc_lambda={self.ewc_lambda:g} will make SGD diverge: lr·λ·max F = "
                f"{group['lr'] * stiffness:.3g} must stay below 2(1 + momentum) = "
                f"{2 * (1 + group['momentum']):.3g}; use ewc_lambda < {largest:.3g} "
                "(or a smaller lr)"
            )

    # -- input -------------------------------------------------------------------------------
    def prepare_inputs(self, X: Any, y: Any = None) -> tuple[Tensor, Tensor | None]:
        """Check a batch and convert it for the network.

        Parameters
        ----------
        X : numpy.ndarray or torch.Tensor, shape (N, C, H, W)
            uint8 pixels (scaled to [0, 1]) or finite floats (used as given); 1-channel
            input is repeated when the network wants 3.
        y : array-like of int, shape (N,), optional
            Labels in ``[0, num_classes)``.

        Returns
        -------
        X : torch.Tensor, float32 on ``self.device``
        y : torch.LongTensor on ``self.device``, or None

        Raises
        ------
        TypeError, ValueError
            Bad input (see :func:`ewclab.validation.check_batch`); nothing is changed.
        """
        X, y = check_batch(X, y, self.spec)
        return self._convert(X, y)

    def _convert(self, X: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor | None]:
        X = to_float_input(X, self.spec.channels, self.device)
        return X, None if y is None else y.to(self.device, torch.long, non_blocking=True)

    # -- training ----------------------------------------------------------------------------
    def partial_fit(self, X: Any, y: Any) -> float:
        """Run **one** optimisation step on the batch ``(X, y)``; return its loss.

        The loss is cross-entropy + EWC penalty. When the call raises, nothing has changed:

        - ``TypeError`` / ``ValueError``: bad input, or an optimiser setting (``lr``,
          ``momentum``, ``betas`` in ``optimizer.param_groups``) that is not a finite
          number in range;
        - :class:`DivergenceError` (a ``FloatingPointError`` and a ``ValueError``): λ is
          past SGD's stability bound (:meth:`check_stability`, checked before the step),
          or the loss, the gradients or the updated parameters are not finite.
        """
        X, y = self.prepare_inputs(X, _require_labels(y))
        self._check_ready()
        with _mode(self, training=True), snapshot.global_rng_kept_on_error(self.device):
            return self._step(X, y)

    def fit(
        self, X: Any, y: Any, epochs: int = 1, batch_size: int = 64, progress: bool = False
    ) -> Learner:
        """Train for ``epochs`` passes over ``(X, y)`` in shuffled mini-batches; return self.

        The shuffling draws from the model's own generator (seeded by ``seed``). A tqdm
        progress bar goes to stderr when ``progress`` is true. All or nothing: if a step
        raises (see :meth:`partial_fit`) or the call is interrupted, the weights, the
        optimiser state, the model's generator and torch's global one (dropout's) are put
        back as they were when ``fit`` began, then the error propagates. That costs one
        copy of the weights and optimiser state per call, not per step.
        """
        epochs = check_int(epochs, "epochs", low=1)
        batch_size = check_int(batch_size, "batch_size", low=1)
        progress = check_bool(progress, "progress")
        X, y = check_batch(X, _require_labels(y), self.spec)
        self._check_ready()
        n = len(X)
        start = self._snapshot(reuse=False)
        try:
            with _mode(self, training=True), snapshot.global_rng_kept_on_error(self.device), tqdm(
                total=epochs * math.ceil(n / batch_size), disable=not progress,
                file=sys.stderr, desc="fit",
            ) as bar:
                for _ in range(epochs):
                    order = torch.randperm(n, generator=self.shuffle_rng)
                    for idx in order.split(batch_size):
                        loss = self._step(*self._convert(X[idx], y[idx]))
                        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                        bar.update()
        except BaseException:
            self._restore(start)
            raise
        return self

    def _check_ready(self) -> None:
        """Refuse to train with an unusable optimiser setting or a λ past the SGD bound."""
        check_param_groups(self.optimizer.param_groups)
        if self.ewc.terms and self.ewc.lam:
            self.check_stability()

    def _step(self, X: Tensor, y: Tensor) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        cross_entropy = F.cross_entropy(self(X), y)
        cross_entropy.backward()
        penalty = self.ewc.add_gradient()  # .grad += λ F (θ − θ*), in closed form
        value = cross_entropy.item() + penalty
        if logger.isEnabledFor(logging.DEBUG):  # the hot path pays one check when off
            logger.debug("step on %d samples: loss %.4f = cross-entropy %.4f + penalty %.4g",
                         len(X), value, value - penalty, penalty)
        if not math.isfinite(value):
            self.optimizer.zero_grad(set_to_none=True)
            raise DivergenceError(self._diverged(f"the loss is {value}"))
        if self._last_loss is not None and value > LOSS_JUMP * max(self._last_loss, 1.0):
            last, self._last_loss = self._last_loss, None  # refused once; then let it train
            self.optimizer.zero_grad(set_to_none=True)
            raise DivergenceError(self._diverged(
                f"the loss jumped from {last:.3g} to {value:.3g} in one step "
                "(the step before this one moved the weights far)"
            ))
        g_max = max_abs([p.grad for p in self._params if p.grad is not None])
        if not math.isfinite(g_max):
            self.optimizer.zero_grad(set_to_none=True)
            raise DivergenceError(self._diverged("the gradients are not finite"))
        lr = max(group["lr"] for group in self.optimizer.param_groups)
        self._large_steps = self._large_steps or lr * max(g_max, 1.0) > LARGE_STEP
        undo = self._snapshot(reuse=True) if self._large_steps else None
        self.optimizer.step()
        if undo is not None and not math.isfinite(max_abs(undo.tensors)):
            self._restore(undo)
            raise DivergenceError(self._diverged("the step made the weights non-finite"))
        self._last_loss = value
        return value

    def _diverged(self, what: str) -> str:
        return (
            f"training diverged: {what}; weights and optimiser state are unchanged. "
            f"Lower lr (now {self.optimizer.param_groups[0]['lr']}) or ewc_lambda "
            f"(now {self.ewc_lambda})."
        )

    def _snapshot(self, reuse: bool) -> snapshot.Snapshot:
        """Weights, optimiser state, generator and step guards; ``reuse`` copies into the
        per-step undo buffers (allocated once) instead of fresh tensors."""
        snap = snapshot.take(self._params, self.optimizer, self.shuffle_rng,
                             (self._large_steps, self._last_loss), self._undo if reuse else None)
        if reuse:
            self._undo = snap.copies
        return snap

    def _restore(self, snap: snapshot.Snapshot) -> None:
        self._large_steps, self._last_loss = snapshot.restore(snap, self.optimizer,
                                                              self.shuffle_rng)

    # -- inference ---------------------------------------------------------------------------
    def predict_proba(self, X: Any, batch_size: int = 256) -> np.ndarray:
        """Class probabilities, shape (N, num_classes), computed in eval mode without grad."""
        batch_size = check_int(batch_size, "batch_size", low=1)
        X, _ = check_batch(X, None, self.spec)
        with _mode(self, training=False), torch.no_grad():
            chunks = [
                torch.softmax(self(self._convert(xb, None)[0]), dim=1).cpu()
                for xb in X.split(batch_size)
            ]
        return torch.cat(chunks).numpy()

    def predict(self, X: Any, batch_size: int = 256) -> np.ndarray:
        """Predicted class labels, shape (N,), int64."""
        return self.predict_proba(X, batch_size).argmax(axis=1)

    def score(self, X: Any, y: Any, batch_size: int = 256) -> float:
        """Accuracy on ``(X, y)``, in [0, 1]."""
        _, y = check_batch(X, _require_labels(y), self.spec)
        return float((self.predict(X, batch_size) == y.cpu().numpy()).mean())

    # -- EWC ---------------------------------------------------------------------------------
    def consolidate(self, X: Any, y: Any = None, fisher: str | None = None) -> dict[str, Tensor]:
        """Anchor the current weights with a Fisher computed on samples ``(X, y)`` of the task
        just learned (call it after each task, before the next).

        ``fisher`` is "exact" (labels weighted by the model's own p(y|x)), "empirical"
        (the true labels y) or "sampled"; by default the kind the model was built with
        (its ``fisher`` option, "exact" unless set). Labels given are checked whatever the
        kind. Returns the Fisher
        (dict of tensors by parameter name). Samples can come from ``self.buffer``:
        ``model.consolidate(*model.buffer.get("mnist"))``.
        """
        return self.ewc.consolidate(X, y, fisher=fisher)

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str) -> None:
        """Write weights, optimiser, EWC state and buffer to ``path`` (see ewclab.persist)."""
        persist.save(self, path)

    @classmethod
    def load(cls, path: str, device: str | torch.device | None = None) -> Learner:
        """Rebuild a model saved with :meth:`save`; ``device`` overrides the saved one."""
        model = persist.load(path, device=device)
        if not isinstance(model, cls):
            raise ValueError(f"{path} holds a {type(model).__name__}, not a {cls.__name__}")
        return model


def _require_labels(y: Any) -> Any:
    if y is None:
        raise ValueError("y (the labels) is required, got None")
    return y


@contextmanager
def _mode(model: nn.Module, training: bool) -> Iterator[None]:
    """Switch train/eval mode for the block and restore the previous mode afterwards."""
    before = model.training
    if before != training:
        model.train(training)
    try:
        yield
    finally:
        if model.training != before:
            model.train(before)
