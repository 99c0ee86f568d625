"""The EWC penalty (Kirkpatrick et al., PNAS 2017) and its online and L2 variants.

After learning a task, :meth:`EWC.consolidate` stores the diagonal Fisher F (see
:mod:`ewclab.fisher`) and a detached copy θ* of the weights. While later tasks are learned
the training loss gains

    penalty = λ/2 · Σ_terms Σ_i F_i (θ_i − θ*_i)²,     ∂penalty/∂θ_i = λ · Σ_terms F_i (θ_i − θ*_i)

so weights that mattered for earlier tasks (large F_i) are held near their old values.
The modes differ only in which terms are kept:

- ``"separate"``: one (F, θ*) per consolidated task (the paper);
- ``"online"``: a single term, F ← γ·F + F_new and θ* ← the latest weights (Schwarz et al.
  2018, "Progress & Compress"), constant memory in the number of tasks;
- ``"l2"``: the paper's L2 baseline, one term per task with F = 1 (every weight equally
  important).

λ's scale: F is a *mean* over samples of squared per-sample gradients, so it does not
change with the batch or sample count; λ = 0 is plain training.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ewclab.fisher import KINDS, fisher_diagonal
from ewclab.validation import FLOAT32_MAX, check_int, check_option, check_real

logger = logging.getLogger(__name__)

MODES = ("separate", "online", "l2")


@dataclass
class Term:
    """One penalty term: each weight's importance F (EWC's Fisher, or SI's or MAS's
    importance, or 1 for L2) and the value θ* it is pulled towards (both dicts of tensors
    keyed like ``model.named_parameters()``; θ* is a detached copy). A saved state keeps
    the importance under the key ``"fisher"``."""

    importance: dict[str, Tensor]
    anchor: dict[str, Tensor]


class EWC:
    """Elastic Weight Consolidation penalty for ``model``.

    Parameters
    ----------
    model : nn.Module
        The network whose trainable parameters are anchored.
    lam : float, default 100.0
        EWC strength λ >= 0 in penalty = λ/2 · Σ F_i (θ_i − θ*_i)².
    mode : {"separate", "online", "l2"}, default "separate"
        One term per task, one running term decayed by ``gamma``, or F = 1 per task.
    gamma : float, default 1.0
        Decay in (0, 1] of the old Fisher in ``"online"`` mode (1 = plain sum).
    fisher : {"exact", "empirical", "sampled"}, default "exact"
        Default Fisher kind of :meth:`consolidate`.
    batch_size : int, default 256
        Samples per batched pass of the Fisher estimator.
    generator : torch.Generator, optional
        Random source of the sampled Fisher (a learner passes its own, seeded one);
        ``None`` draws from the global RNG.

    Examples
    --------
    >>> ewc = EWC(model, lam=100.0)                       # doctest: +SKIP
    >>> ewc.consolidate(X_a, y_a)                          # after task A  # doctest: +SKIP
    >>> loss = F.cross_entropy(model(X_b), y_b) + ewc.penalty()   # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        lam: float = 100.0,
        mode: str = "separate",
        gamma: float = 1.0,
        fisher: str = "exact",
        batch_size: int = 256,
        generator: torch.Generator | None = None,
    ):
        self.model = model
        self.lam = lam
        self.mode = mode
        self.gamma = gamma
        self.fisher = fisher
        self.batch_size = batch_size
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")
        self.generator = generator
        self.terms: list[Term] = []
        self._max_f: tuple[list[Term], float] = ([], 0.0)  # stiffness cache: terms, max Σ F
        self._sqrt_f: tuple[list[Term], list[dict[str, Tensor]]] = ([], [])  # terms, √F each
        self._scratch_buffers: dict[str, Tensor] = {}  # add_gradient's, one per weight

    # -- settings, validated on every assignment so a bad value never lands -------------------
    @property
    def lam(self) -> float:
        """EWC strength λ >= 0 (0 = plain training)."""
        return self._lam

    @lam.setter
    def lam(self, value: float) -> None:
        self._lam = check_lam(value, "lam (the EWC strength λ)")

    @property
    def gamma(self) -> float:
        """Decay γ in (0, 1] of the running Fisher in ``"online"`` mode."""
        return self._gamma

    @gamma.setter
    def gamma(self, value: float) -> None:
        self._gamma = check_real(value, "gamma", low=0, low_open=True, high=1)

    @property
    def mode(self) -> str:
        """``"separate"``, ``"online"`` or ``"l2"``; fixed once a task is consolidated."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        check_option(value, "mode", MODES)
        if getattr(self, "terms", None) and value != self._mode:
            raise ValueError(
                f"cannot switch mode from {self._mode!r} to {value!r} after {len(self.terms)} "
                "consolidated task(s); create a new EWC (or a new model) instead"
            )
        self._mode = value

    @property
    def fisher(self) -> str:
        """Default Fisher kind of :meth:`consolidate`: one of :data:`ewclab.fisher.KINDS`."""
        return self._fisher

    @fisher.setter
    def fisher(self, value: str) -> None:
        self._fisher = _check_kind(value)

    @property
    def batch_size(self) -> int:
        """Samples per batched pass of the Fisher estimator."""
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._batch_size = check_int(value, "batch_size", low=1)

    @classmethod
    def l2(cls, model: nn.Module, lam: float = 1.0) -> EWC:
        """The L2 baseline of the EWC paper: every weight anchored with F = 1."""
        return cls(model, lam=lam, mode="l2")

    # -- consolidation -----------------------------------------------------------------------
    def consolidate(self, X: Any, y: Any = None, fisher: str | None = None) -> dict[str, Tensor]:
        """Anchor the current weights with the Fisher of samples ``(X, y)`` of the task just
        learned; return that Fisher (a dict of tensors keyed like ``named_parameters()``).

        ``fisher`` overrides the default kind. The penalty term stored in ``"l2"`` mode uses
        F = 1, but the returned Fisher is still the estimate (handy for plots). On bad input
        the error comes from :func:`ewclab.fisher.fisher_diagonal` and nothing is stored.
        """
        kind = self.fisher if fisher is None else _check_kind(fisher)
        F = fisher_diagonal(
            self.model, X, y, kind=kind, batch_size=self.batch_size, generator=self.generator
        )
        logger.info("consolidate: %s Fisher on %d samples", kind, len(X))
        self.add_task(F)
        return F

    def add_task(self, fisher: Mapping[str, Tensor]) -> None:
        """Anchor the current weights with a precomputed Fisher (e.g. a cached one).

        Raises ``ValueError`` when ``fisher``'s names or shapes do not match the model's
        trainable parameters, or when it holds negative or non-finite values.
        """
        params = self._params()
        F = _check_fisher(fisher, params, "fisher")
        summary = _summary(F) if logger.isEnabledFor(logging.INFO) else ""
        if self.mode == "l2":
            F = {name: torch.ones_like(f) for name, f in F.items()}
        anchor = {name: p.detach().clone() for name, p in params.items()}
        if self.mode == "online" and self.terms:
            old = self.terms[0].importance
            F = {name: self.gamma * old[name] + F[name] for name in F}
            self.terms = [Term(F, anchor)]
        else:
            self.terms.append(Term(F, anchor))
        logger.info("EWC (%s, λ = %g): anchored %d term(s); this task's F %s",
                    self.mode, self.lam, len(self.terms), summary)

    def reset(self) -> None:
        """Forget every consolidated task (the penalty becomes zero)."""
        self.terms = []
        self._max_f, self._sqrt_f = ([], 0.0), ([], [])

    # -- the penalty ----------------------------------------------------------------------------
    def penalty(self) -> Tensor:
        """λ/2 · Σ_terms Σ_i F_i (θ_i − θ*_i)²: the definition, as a scalar tensor that
        autograd differentiates like any other (to any order, with ``torch.func`` too).

        For a hand-written training loop: ``loss = cross_entropy + ewc.penalty()``.
        Learners skip this graph and add the gradient in closed form
        (:meth:`add_gradient`).
        """
        params = self._params()
        total = next(iter(params.values())).new_zeros(())
        if self.lam == 0 or not self.terms:
            return total
        for term in self.terms:
            for name, theta in params.items():
                total = total + (term.importance[name] * (theta - term.anchor[name]) ** 2).sum()
        return 0.5 * self.lam * total

    def add_gradient(self) -> float:
        """Add the penalty's gradient λ Σ_terms F_i (θ_i − θ*_i) to each weight's ``.grad``;
        return the penalty's value.

        The gradient of a quadratic is known in closed form, so no autograd graph is built.
        With s = √F the penalty is λ/2 Σ (s (θ − θ*))² and its gradient λ s · s (θ − θ*).
        Per weight tensor and term, one scratch buffer (kept from call to call) takes
        θ − θ*, then s (θ − θ*) in place; its squared norm adds to the value, and
        λ s · s (θ − θ*) = λ F (θ − θ*) to the gradient. That is four passes over each
        weight tensor, no weight-sized allocation. s is computed once per set of terms and kept
        (one more weight-sized tensor per term); like :meth:`stiffness`'s cache, this
        assumes a term's tensors are replaced, not edited in place. Call it after
        ``backward()`` of the rest of the loss (gradients add up; a weight without a
        ``.grad`` gets one).
        """
        if self.lam == 0 or not self.terms:
            return 0.0
        value: Tensor | float = 0.0
        roots = self._roots()
        with torch.no_grad():
            for name, theta in self._params().items():
                scaled = self._scratch(name, theta)
                for term, root in zip(self.terms, roots, strict=True):
                    torch.sub(theta, term.anchor[name], out=scaled)  # θ − θ*
                    scaled.mul_(root[name])  # s (θ − θ*), s = √F
                    value = value + torch.dot(scaled.view(-1), scaled.view(-1))
                    if theta.grad is None:
                        theta.grad = torch.mul(root[name], scaled).mul_(self.lam)
                    else:  # += λ s · s (θ − θ*) = λ F (θ − θ*)
                        theta.grad.addcmul_(root[name], scaled, value=self.lam)
        return 0.5 * self.lam * float(value)

    def _scratch(self, name: str, theta: Tensor) -> Tensor:
        """A buffer shaped like ``theta`` for :meth:`add_gradient`, made once per weight
        (again if the weight's shape, dtype or device changes)."""
        buf = self._scratch_buffers.get(name)
        if buf is None or buf.shape != theta.shape or buf.dtype != theta.dtype \
                or buf.device != theta.device:
            buf = self._scratch_buffers[name] = torch.empty_like(theta)
        return buf

    def _same_terms(self, cached: list[Term]) -> bool:
        """Whether ``cached`` holds exactly the current term objects (a cache is valid)."""
        return len(cached) == len(self.terms) and all(map(operator.is_, cached, self.terms))

    def _roots(self) -> list[dict[str, Tensor]]:
        """√F of every term, computed once per set of terms."""
        terms, roots = self._sqrt_f
        if not self._same_terms(terms):
            roots = [{name: f.sqrt() for name, f in t.importance.items()} for t in self.terms]
            self._sqrt_f = (list(self.terms), roots)
        return roots

    def stiffness(self) -> float:
        """The penalty's largest curvature, λ · max_i Σ_terms F_i (0 with no task).

        The penalty's Hessian is diagonal with entries λ Σ_terms F_i, so this is its largest
        eigenvalue: what bounds the learning rate plain SGD can use on the penalty (see
        :meth:`ewclab.learner.Learner.check_stability`). max Σ F is computed once per set
        of terms and cached, so calling this before every training step is cheap.
        """
        if self.lam == 0 or not self.terms:
            return 0.0
        terms, max_f = self._max_f
        if not self._same_terms(terms):
            total: dict[str, Tensor] = {}
            for term in self.terms:
                for name, f in term.importance.items():
                    total[name] = f if name not in total else total[name] + f
            max_f = max(float(f.max()) for f in total.values())
            self._max_f = (list(self.terms), max_f)
        return self.lam * max_f

    # -- persistence ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Settings and every term's F and θ* (plain dicts, tensors and numbers only)."""
        return {
            "lam": self.lam,
            "mode": self.mode,
            "gamma": self.gamma,
            "fisher": self.fisher,
            "batch_size": self.batch_size,
            "tasks": [
                {
                    "fisher": {k: v.detach().clone() for k, v in term.importance.items()},
                    "anchor": {k: v.detach().clone() for k, v in term.anchor.items()},
                }
                for term in self.terms
            ],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; on any mismatch raise ``ValueError`` and keep
        the current state."""
        try:
            staged = EWC(
                self.model, lam=state["lam"], mode=state["mode"], gamma=state["gamma"],
                fisher=state["fisher"], batch_size=state["batch_size"],
            )
            if not isinstance(state["tasks"], list):
                raise TypeError(f"'tasks' must be a list, got {type(state['tasks']).__name__}")
            params = self._params()
            terms = [
                Term(_check_fisher(term["fisher"], params, f"tasks[{t}]['fisher']"),
                     _check_tensors(term["anchor"], params, f"tasks[{t}]['anchor']"))
                for t, term in enumerate(state["tasks"])
            ]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not an EWC state: missing or malformed {exc}") from exc
        except ValueError as exc:
            raise ValueError(f"not a valid EWC state: {exc}") from exc
        if staged.mode == "online" and len(terms) > 1:
            raise ValueError(f"an online EWC state holds one term, got {len(terms)}")
        self._lam, self._gamma, self._batch_size = staged.lam, staged.gamma, staged.batch_size
        self._mode, self.fisher, self.terms = staged.mode, staged.fisher, terms
        self._max_f, self._sqrt_f = ([], 0.0), ([], [])

    def __repr__(self) -> str:
        return (
            f"EWC(lam={self.lam:g}, mode={self.mode!r}, gamma={self.gamma:g}, "
            f"fisher={self.fisher!r}, terms={len(self.terms)})"
        )

    def _params(self) -> dict[str, Tensor]:
        return {name: p for name, p in self.model.named_parameters() if p.requires_grad}


def check_lam(value: Any, name: str = "lam") -> float:
    """An EWC strength λ: a real number in [0, float32's largest] (the penalty is float32)."""
    return check_real(value, name, low=0, high=FLOAT32_MAX)


def _summary(fisher: Mapping[str, Tensor]) -> str:
    """Mean and max of a Fisher over all its entries, in words (for the log)."""
    total = sum(float(f.sum()) for f in fisher.values())
    count = sum(f.numel() for f in fisher.values())
    top = max(float(f.max()) for f in fisher.values())
    return f"mean {total / count:.3g}, max {top:.3g} over {count} weights"


def _check_kind(kind: str) -> str:
    return check_option(kind, "fisher", KINDS)


def _check_fisher(
    fisher: Mapping[str, Tensor], params: Mapping[str, Tensor], what: str
) -> dict[str, Tensor]:
    """Like :func:`_check_tensors`, and every value >= 0 (a Fisher is a mean of squares)."""
    F = _check_tensors(fisher, params, what)
    if any(bool((f < 0).any()) for f in F.values()):
        raise ValueError(f"{what} must be >= 0 everywhere (it is a mean of squares)")
    return F


def _check_tensors(
    tensors: Mapping[str, Tensor], params: Mapping[str, Tensor], what: str
) -> dict[str, Tensor]:
    """Detached float copies of ``tensors`` on the parameters' devices, checked name by name."""
    if not isinstance(tensors, Mapping) or set(tensors) != set(params):
        got = sorted(tensors) if isinstance(tensors, Mapping) else type(tensors).__name__
        raise ValueError(f"{what} must have one tensor per trainable parameter "
                         f"{sorted(params)}, got {got}")
    out = {}
    for name, p in params.items():
        t = tensors[name]
        if not torch.is_tensor(t) or t.shape != p.shape:
            shape = tuple(t.shape) if torch.is_tensor(t) else type(t).__name__
            raise ValueError(f"{what}[{name!r}] must have shape {tuple(p.shape)}, got {shape}")
        t = t.detach().to(device=p.device, dtype=p.dtype, copy=True)
        if not torch.isfinite(t).all():
            raise ValueError(f"{what}[{name!r}] holds NaN or inf values")
        out[name] = t
    return out
