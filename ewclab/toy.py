"""EWC in two dimensions: two quadratic tasks, and gradient descent on task B from θ*_A.

Each task's loss is a quadratic bowl ``L(θ) = ½ (θ − θ*)ᵀ H (θ − θ*)``. A quadratic loss
is the negative log-likelihood of a Gaussian with precision ``H``, so its Fisher
information equals its Hessian ``H`` (at every θ, in particular at the optimum). EWC uses
only the diagonal of that Fisher; with the default tasks, task A's Hessian is diagonal, so
here the diagonal Fisher is exact rather than an approximation.

Starting from task A's optimum, :func:`descent_paths` runs gradient descent on

- plain training ("sgd"):  L_B(θ)
- "l2":                    L_B(θ) + λ/2 ‖θ − θ*_A‖²
- "ewc":                   L_B(θ) + λ/2 Σ_i F_i (θ_i − θ*_A,i)²

and, for the Laplace picture of lesson 02b, "laplace": L_B(θ) + λ/2 (θ − θ*_A)ᵀ F (θ − θ*_A)
with the *full* Fisher F = H of task A. With λ = 1 that is exactly L_A + L_B, whose minimum
is the joint optimum of both tasks (the mode of the posterior after A and B).
:func:`end_point` gives each objective's minimiser in closed form, :func:`rotated` turns
task A's bowl so that its Fisher is no longer diagonal (used in lesson 02b).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

METHODS = ("sgd", "l2", "ewc")


@dataclass(frozen=True)
class Quadratic:
    """A task whose loss is ``L(θ) = ½ (θ − optimum)ᵀ hessian (θ − optimum)``.

    Parameters
    ----------
    optimum : array_like, shape (2,)
        The task's optimum θ*.
    hessian : array_like, shape (2, 2)
        Symmetric positive-definite curvature H.
    """

    optimum: np.ndarray
    hessian: np.ndarray

    def __post_init__(self) -> None:
        optimum = np.asarray(self.optimum, dtype=float)
        hessian = np.asarray(self.hessian, dtype=float)
        if optimum.shape != (2,) or hessian.shape != (2, 2):
            raise ValueError(
                f"expected optimum of shape (2,) and hessian of shape (2, 2), "
                f"got {optimum.shape} and {hessian.shape}"
            )
        if not np.allclose(hessian, hessian.T) or np.linalg.eigvalsh(hessian).min() <= 0:
            raise ValueError(f"hessian must be symmetric positive definite, got {hessian.tolist()}")
        object.__setattr__(self, "optimum", optimum)
        object.__setattr__(self, "hessian", hessian)

    def loss(self, theta: np.ndarray) -> np.ndarray:
        """Loss at ``theta`` of shape ``(..., 2)``; returns shape ``(...)``."""
        d = np.asarray(theta, dtype=float) - self.optimum
        return 0.5 * np.einsum("...i,ij,...j->...", d, self.hessian, d)

    def grad(self, theta: np.ndarray) -> np.ndarray:
        """Gradient ``H (θ − θ*)`` at ``theta`` of shape ``(..., 2)``."""
        return (np.asarray(theta, dtype=float) - self.optimum) @ self.hessian

    def fisher(self) -> np.ndarray:
        """Diagonal Fisher at the optimum: ``diag(H)`` (exact for a Gaussian likelihood)."""
        return np.diag(self.hessian).copy()


def make_tasks() -> tuple[Quadratic, Quadratic]:
    """The default pair: task A narrow along θ₂ and flat along θ₁; task B's optimum elsewhere.

    Returns
    -------
    task_a, task_b : Quadratic
    """
    task_a = Quadratic(optimum=np.array([0.0, 0.0]), hessian=np.diag([0.2, 5.0]))
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    rotation = np.array([[c, -s], [s, c]])
    hessian_b = rotation @ np.diag([1.5, 0.6]) @ rotation.T
    task_b = Quadratic(optimum=np.array([2.5, 2.0]), hessian=hessian_b)
    return task_a, task_b


def rotated(task: Quadratic, degrees: float) -> Quadratic:
    """``task`` with its bowl turned by ``degrees`` about its optimum (lesson 02b).

    The Hessian's eigenvalues are kept and its eigenvectors rotated: ``R H Rᵀ``. At
    0° the default task A has a diagonal Fisher; at 45° its diagonal is the same number
    twice, and a diagonal penalty can no longer tell the narrow direction from the flat one.
    """
    degrees = float(degrees)
    if not math.isfinite(degrees):
        raise ValueError(f"degrees must be a finite number, got {degrees!r}")
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    rotation = np.array([[c, -s], [s, c]])
    hessian = rotation @ task.hessian @ rotation.T
    return Quadratic(optimum=task.optimum, hessian=(hessian + hessian.T) / 2)


def penalty_matrix(task_a: Quadratic, method: str) -> np.ndarray:
    """The 2 × 2 matrix ``W`` of the penalty ``λ/2 (θ − θ*_A)ᵀ W (θ − θ*_A)``.

    ``diag(penalty_weights(...))`` for "sgd", "l2" and "ewc"; task A's full Fisher ``H``
    for "laplace".
    """
    if method == "laplace":
        return task_a.hessian.copy()
    return np.diag(penalty_weights(task_a, method))


def end_point(task_a: Quadratic, task_b: Quadratic, lam: float, method: str) -> np.ndarray:
    """Where training on task B ends: the minimiser of ``L_B + λ/2 (θ − θ*_A)ᵀ W (θ − θ*_A)``.

    Closed form ``(H_B + λW)⁻¹ (H_B θ*_B + λ W θ*_A)``, the point that
    :func:`descent_paths` converges to; ``method`` is one of ``METHODS`` or "laplace".
    """
    lam = float(lam)
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
    W = lam * penalty_matrix(task_a, method)
    H = task_b.hessian + W
    return np.linalg.solve(H, task_b.hessian @ task_b.optimum + W @ task_a.optimum)


def end_losses(
    task_a: Quadratic, task_b: Quadratic, lams: Sequence[float], method: str
) -> np.ndarray:
    """Both tasks' losses at :func:`end_point` for each λ: shape ``(len(lams), 2)``,
    columns ``(L_A, L_B)`` (a trade-off curve, lesson 00)."""
    ends = [end_point(task_a, task_b, lam, method) for lam in lams]
    return np.array([[float(task_a.loss(e)), float(task_b.loss(e))] for e in ends])


def dominating_lams(
    task_a: Quadratic,
    task_b: Quadratic,
    l2_lams: Sequence[float],
    ewc_lams: Sequence[float],
) -> np.ndarray:
    """For each L2 λ, the smallest EWC λ in ``ewc_lams`` whose end point is no worse on
    both tasks (``L_A`` and ``L_B`` at most L2's), or NaN if none is (lesson 00).

    Returns
    -------
    numpy.ndarray, shape (len(l2_lams),)
    """
    ewc_lams = np.asarray(ewc_lams, dtype=float)
    order = np.argsort(ewc_lams)
    ewc = end_losses(task_a, task_b, ewc_lams[order], "ewc")
    l2 = end_losses(task_a, task_b, l2_lams, "l2")
    found = []
    for loss_a, loss_b in l2:
        ok = np.flatnonzero((ewc[:, 0] <= loss_a) & (ewc[:, 1] <= loss_b))
        found.append(ewc_lams[order][ok[0]] if len(ok) else np.nan)
    return np.array(found)


def gaussian_ellipse(optimum: np.ndarray, precision: np.ndarray, n: int = 200) -> np.ndarray:
    """Points ``θ`` with ``(θ − optimum)ᵀ precision (θ − optimum) = 1``: the one-standard-
    deviation ellipse of the Gaussian ``N(optimum, precision⁻¹)``; shape ``(n, 2)``."""
    values, vectors = np.linalg.eigh(np.asarray(precision, dtype=float))
    if values.min() <= 0:
        raise ValueError(f"precision must be positive definite, got {np.asarray(precision)}")
    angle = np.linspace(0, 2 * np.pi, n)
    circle = np.stack([np.cos(angle), np.sin(angle)], axis=-1)  # (n, 2)
    return np.asarray(optimum, float) + (circle / np.sqrt(values)) @ vectors.T


def penalty_weights(task_a: Quadratic, method: str) -> np.ndarray:
    """Per-parameter weights ``w`` of the penalty ``λ/2 Σ w_i (θ_i − θ*_A,i)²``."""
    if method == "sgd":
        return np.zeros(2)
    if method == "l2":
        return np.ones(2)
    if method == "ewc":
        return task_a.fisher()
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def descent_paths(
    task_a: Quadratic,
    task_b: Quadratic,
    lam: float,
    steps: int = 1000,
    lr: float | None = None,
) -> dict[str, np.ndarray]:
    """Gradient descent on task B from θ*_A, for plain training, L2 and EWC.

    Parameters
    ----------
    task_a, task_b : Quadratic
        The first and the second task.
    lam : float
        Penalty strength λ ≥ 0 (the penalty is ``λ/2 Σ w_i (θ_i − θ*_A,i)²``).
    steps : int
        Number of gradient steps.
    lr : float, optional
        Step size. By default each method uses ``0.2 / L``, where ``L`` is the largest
        curvature of its objective: stable for every λ, and small enough that the path
        follows the smooth gradient flow. An explicit ``lr`` must satisfy ``lr · L < 2``
        for every method.

    Returns
    -------
    dict of str to numpy.ndarray
        ``{"sgd": path, "l2": path, "ewc": path}``, each of shape ``(steps + 1, 2)``,
        starting at ``task_a.optimum``.
    """
    lam = float(lam)
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number or None, got {lr!r}")
    curvatures = {m: task_b.hessian + lam * np.diag(penalty_weights(task_a, m)) for m in METHODS}
    top = {m: float(np.linalg.eigvalsh(h).max()) for m, h in curvatures.items()}
    if lr is not None and max(top.values()) * lr >= 2:
        raise ValueError(
            f"lr={lr} diverges: it must be below 2 / {max(top.values()):.3g} for lam={lam}"
        )
    paths = {}
    for m in METHODS:
        eta = lr if lr is not None else 0.2 / top[m]
        weights = lam * penalty_weights(task_a, m)
        theta = task_a.optimum.copy()
        path = [theta]
        for _ in range(steps):
            theta = theta - eta * (task_b.grad(theta) + weights * (theta - task_a.optimum))
            path.append(theta)
        paths[m] = np.array(path)
    return paths


def loss_grid(
    task: Quadratic, xlim: tuple[float, float], ylim: tuple[float, float], n: int = 121
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The task's loss on an ``n × n`` grid, for contour plots.

    Returns
    -------
    theta1, theta2, loss : numpy.ndarray
        Each of shape ``(n, n)`` (``numpy.meshgrid`` order).
    """
    t1, t2 = np.meshgrid(np.linspace(*xlim, n), np.linspace(*ylim, n))
    return t1, t2, task.loss(np.stack([t1, t2], axis=-1))
