"""The learner API every ewclab network shares: ``partial_fit``, ``fit``, ``predict``,
``score``, ``consolidate``, ``save`` / ``load`` (scikit-learn manners, seed-compatible).

A subclass only says which layers it has (`build`) and how they compute (`forward`);
training, EWC, validation and persistence live here. The training loss is
cross-entropy + ``model.ewc.penalty()``, where the penalty is
``ewc_lambda / 2 * sum_tasks sum_i F_i (theta_i - theta*_i)^2``.

Every call either succeeds or raises with all state (weights, optimiser, EWC, buffer)
unchanged: inputs are checked before anything is touched, and a step whose loss or
gradients are not finite is refused before the optimiser runs. With finite gradients
an SGD or Adam step can only overflow when ``lr * max|gradient|`` is astronomically
large (a weight moves by at most ``lr * max|g| / (1 - momentum)`` for SGD, a few ``lr``
for Adam, whose second moment overflows only for ``|g| > 1e19``). So ordinary steps pay
only for one min/max pass over the gradients; from the first step above
:data:`LARGE_STEP` on, each step first copies weights and optimiser state into
preallocated buffers and is undone if anything came out non-finite.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ewclab.buffer import TaskBuffer
from ewclab.ewc import EWC
from ewclab.validation import InputSpec, check_batch, to_float_input

logger = logging.getLogger(__name__)

#: Learning rate used when ``lr=None``, per optimiser.
DEFAULT_LR = {"sgd": 0.01, "adam": 0.001}

#: Steps with ``lr * max(max|gradient|, 1)`` above this are "large": from the first large
#: step on, every step keeps an undo snapshot and checks the weights after stepping.
LARGE_STEP = 1e6

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
    fisher : {"empirical", "exact", "sampled"}, default "empirical"
        Default Fisher kind for ``consolidate``.
    optimizer : {"sgd", "adam"}, default "sgd"
        ``torch.optim.SGD`` (with ``momentum``) or ``torch.optim.Adam``.
    lr : float or None, default None
        Learning rate; ``None`` takes :data:`DEFAULT_LR` (SGD 0.01, Adam 0.001).
    momentum : float, default 0.9
        SGD momentum in [0, 1); ignored by Adam.
    device : str or torch.device, default "auto"
        ``"auto"`` is CUDA when available, else CPU.
    seed : int or None, default None
        Seeds the weight initialisation and ``fit``'s shuffling without touching the
        global RNG. Dropout draws from the global RNG (``torch.manual_seed``).
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
        fisher: str = "empirical",
        optimizer: str = "sgd",
        lr: float | None = None,
        momentum: float = 0.9,
        device: str | torch.device = "auto",
        seed: int | None = None,
        buffer_per_task: int = 200,
    ):
        super().__init__()
        if optimizer not in DEFAULT_LR:
            raise ValueError(f"optimizer must be one of {sorted(DEFAULT_LR)}, got {optimizer!r}")
        lr = DEFAULT_LR[optimizer] if lr is None else lr
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        if not (isinstance(momentum, (int, float)) and 0 <= momentum < 1):
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
        self.device = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        )
        self.config = {
            **arch,
            "ewc_lambda": ewc_lambda, "ewc_mode": ewc_mode, "ewc_gamma": ewc_gamma,
            "fisher": fisher, "optimizer": optimizer, "lr": float(lr),
            "momentum": float(momentum), "device": str(device), "seed": seed,
            "buffer_per_task": buffer_per_task,
        }
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:  # layers are created on the CPU; CUDA's RNG is left alone
                torch.random.default_generator.manual_seed(seed)
            self.spec: InputSpec = self.build(**arch)
        self.to(self.device)
        self._params = [p for p in self.parameters() if p.requires_grad]
        if optimizer == "sgd":
            self.optimizer = torch.optim.SGD(self._params, lr=lr, momentum=momentum)
        else:
            self.optimizer = torch.optim.Adam(self._params, lr=lr)
        self.ewc = EWC(self, lam=ewc_lambda, mode=ewc_mode, gamma=ewc_gamma, fisher=fisher)
        self.buffer = TaskBuffer(per_task=buffer_per_task, seed=0 if seed is None else seed)
        shuffle_seed = seed if seed is not None else int(torch.randint(2**62, ()).item())
        self.shuffle_rng = torch.Generator().manual_seed(shuffle_seed)
        self._undo: list[Tensor] = []
        self._large_steps = False

    def build(self, **arch: Any) -> InputSpec:
        """Create the layers; return what input the network accepts."""
        raise NotImplementedError

    # -- the EWC strength, read and written through the EWC object ------------------------
    @property
    def ewc_lambda(self) -> float:
        """EWC strength λ (``self.ewc.lam``); setting a negative or non-finite λ raises."""
        return self.ewc.lam

    @ewc_lambda.setter
    def ewc_lambda(self, lam: float) -> None:
        self.ewc.lam = lam

    # -- stability of SGD on the penalty -----------------------------------------------------
    def stability_limit(self) -> float:
        """The largest penalty curvature SGD can follow: 2(1 + momentum) / lr (inf for Adam).

        Heavy-ball SGD on a quadratic of curvature h converges only while
        lr · h < 2(1 + momentum); the penalty's curvature is :meth:`EWC.stiffness`.
        """
        if not isinstance(self.optimizer, torch.optim.SGD):
            return math.inf
        group = self.optimizer.param_groups[0]
        return 2 * (1 + group["momentum"]) / group["lr"]

    def check_stability(self) -> None:
        """Raise ``ValueError`` when λ is too large for SGD to stay stable on the penalty.

        The check is lr · λ · max F < 2(1 + momentum) (see :meth:`stability_limit`): past
        it the penalty alone makes the weights oscillate with growing amplitude. Call it
        after ``consolidate`` and before training the next task; nothing is changed.
        """
        stiffness, limit = self.ewc.stiffness(), self.stability_limit()
        if stiffness >= limit:
            group = self.optimizer.param_groups[0]
            largest = self.ewc_lambda * limit / stiffness
            raise ValueError(
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

        The loss is cross-entropy + EWC penalty. Raises ``FloatingPointError`` (with
        weights and optimiser state unchanged) when the loss, the gradients or the
        updated parameters are not finite, e.g. when ``lr * ewc_lambda`` is too large.
        """
        X, y = self.prepare_inputs(X, _require_labels(y))
        with _mode(self, training=True):
            return self._step(X, y)

    def fit(
        self, X: Any, y: Any, epochs: int = 1, batch_size: int = 64, progress: bool = False
    ) -> Learner:
        """Train for ``epochs`` passes over ``(X, y)`` in shuffled mini-batches.

        The shuffling draws from the model's own generator (seeded by ``seed``). A tqdm
        progress bar goes to stderr when ``progress`` is true. Returns ``self``.
        """
        _check_positive_int(epochs, "epochs")
        _check_positive_int(batch_size, "batch_size")
        X, y = check_batch(X, _require_labels(y), self.spec)
        n = len(X)
        steps = epochs * math.ceil(n / batch_size)
        with _mode(self, training=True), tqdm(
            total=steps, disable=not progress, file=sys.stderr, desc="fit"
        ) as bar:
            for _ in range(epochs):
                order = torch.randperm(n, generator=self.shuffle_rng)
                for idx in order.split(batch_size):
                    loss = self._step(*self._convert(X[idx], y[idx]))
                    bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                    bar.update()
        return self

    def _step(self, X: Tensor, y: Tensor) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        cross_entropy, penalty = F.cross_entropy(self(X), y), self.ewc.penalty()
        loss = cross_entropy + penalty
        value = loss.item()
        if logger.isEnabledFor(logging.DEBUG):  # the hot path pays one check when off
            logger.debug("step on %d samples: loss %.4f = cross-entropy %.4f + penalty %.4g",
                         len(X), value, cross_entropy.item(), penalty.item())
        if not math.isfinite(value):
            raise FloatingPointError(self._diverged(f"the loss is {value}"))
        loss.backward()
        g_max = _max_abs([p.grad for p in self._params if p.grad is not None])
        if not math.isfinite(g_max):
            self.optimizer.zero_grad(set_to_none=True)
            raise FloatingPointError(self._diverged("the gradients are not finite"))
        lr = max(group["lr"] for group in self.optimizer.param_groups)
        self._large_steps = self._large_steps or lr * max(g_max, 1.0) > LARGE_STEP
        undo = self._snapshot() if self._large_steps else None
        self.optimizer.step()
        if undo is not None and not math.isfinite(_max_abs(self._optimizer_tensors()[0])):
            self._restore(undo)
            raise FloatingPointError(self._diverged("the step made the weights non-finite"))
        return value

    def _diverged(self, what: str) -> str:
        return (
            f"training diverged: {what}; weights and optimiser state are unchanged. "
            f"Lower lr (now {self.optimizer.param_groups[0]['lr']}) or ewc_lambda "
            f"(now {self.ewc_lambda})."
        )

    def _optimizer_tensors(self) -> tuple[list[Tensor], dict]:
        """Parameters + optimiser state tensors, and each parameter's state dict."""
        state = {p: self.optimizer.state[p] for p in self._params if p in self.optimizer.state}
        extra = [v for s in state.values() for v in s.values() if torch.is_tensor(v)]
        tensors = self._params + extra
        return tensors, state

    def _snapshot(self) -> tuple[list[Tensor], dict]:
        tensors, state = self._optimizer_tensors()
        if [t.shape for t in self._undo] != [t.shape for t in tensors]:
            self._undo = [torch.empty_like(t) for t in tensors]
        with torch.no_grad():
            torch._foreach_copy_(self._undo, tensors)
        return tensors, {p: dict(s) for p, s in state.items()}

    def _restore(self, undo: tuple[list[Tensor], dict]) -> None:
        tensors, state = undo
        with torch.no_grad():
            torch._foreach_copy_(tensors, self._undo)
        self.optimizer.state.clear()
        self.optimizer.state.update(state)

    # -- inference ---------------------------------------------------------------------------
    def predict_proba(self, X: Any, batch_size: int = 256) -> np.ndarray:
        """Class probabilities, shape (N, num_classes), computed in eval mode without grad."""
        _check_positive_int(batch_size, "batch_size")
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

        ``fisher`` is "empirical" (true labels y), "exact" or "sampled"; by default the
        kind the model was built with (its ``fisher`` option). Returns the Fisher
        (dict of tensors by parameter name). Samples can come from ``self.buffer``:
        ``model.consolidate(*model.buffer.get("mnist"))``.
        """
        return self.ewc.consolidate(X, y, fisher=fisher)

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str) -> None:
        """Write weights, optimiser, EWC state and buffer to ``path`` (see ewclab.persist)."""
        from ewclab import persist  # persist imports the model classes

        persist.save(self, path)

    @classmethod
    def load(cls, path: str, device: str | torch.device | None = None) -> Learner:
        """Rebuild a model saved with :meth:`save`; ``device`` overrides the saved one."""
        from ewclab import persist

        model = persist.load(path, device=device)
        if not isinstance(model, cls):
            raise ValueError(f"{path} holds a {type(model).__name__}, not a {cls.__name__}")
        return model


def _max_abs(tensors: list[Tensor]) -> float:
    """Largest absolute value in the tensors (one min/max pass each); NaN if any is NaN."""
    if not tensors:
        return 0.0
    return torch.stack([m for t in tensors for m in torch.aminmax(t)]).abs().max().item()


def _require_labels(y: Any) -> Any:
    if y is None:
        raise ValueError("y (the labels) is required, got None")
    return y


def _check_positive_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


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
