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
"""

from __future__ import annotations

import math
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
