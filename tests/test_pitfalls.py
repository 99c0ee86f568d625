"""ewclab.pitfalls (lesson 06) against hand computations, and its figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from ewclab import MLP
from ewclab.fisher import fisher_diagonal
from ewclab.pitfalls import (
    contraction_rate,
    fisher_convergence,
    fisher_size,
    heavy_ball,
    logit_fisher,
    relative_error,
)
from ewclab.plots.pitfalls import plot_bars, plot_loglog, plot_stability


def test_fisher_size_by_hand() -> None:
    size = fisher_size({"w": torch.tensor([[1.0, 2.0]]), "b": torch.tensor([0.5])})
    assert size.total == 3.5 and size.max == 2.0


def test_relative_error_by_hand_and_refusals() -> None:
    ref = {"w": torch.tensor([3.0, 0.0]), "b": torch.tensor([4.0])}
    est = {"w": torch.tensor([3.0, 1.0]), "b": torch.tensor([4.0])}
    assert relative_error(est, ref) == pytest.approx(1 / 5)
    assert relative_error(ref, ref) == 0.0
    with pytest.raises(ValueError, match="keys"):
        relative_error({"b": ref["b"], "w": ref["w"]}, ref)
    with pytest.raises(ValueError, match="zeros"):
        relative_error(est, {"w": torch.zeros(2), "b": torch.zeros(1)})
    with pytest.raises(TypeError):
        relative_error([1.0], ref)


def test_logit_fisher_by_hand() -> None:
    p = np.array([[0.7, 0.2, 0.1], [1 / 3, 1 / 3, 1 / 3]])
    empirical, exact = logit_fisher(p, np.array([0, 2]))
    # ‖e_y − p‖²: (0.3² + 0.2² + 0.1²), ((1/3)² + (1/3)² + (2/3)²)
    assert empirical == pytest.approx([0.14, 6 / 9])
    # Σ_c p_c ‖e_c − p‖² = 1 − ‖p‖², checked by the sum itself on the first row
    by_sum = sum(p[0, c] * ((np.eye(3)[c] - p[0]) ** 2).sum() for c in range(3))
    assert exact == pytest.approx([by_sum, 2 / 3])


def test_logit_fisher_bounds_in_the_margin() -> None:
    """With ε = 1 − p_y: empirical ≤ 2ε², exact ≥ 2ε(1 − ε)."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 10)) * rng.uniform(0.1, 8, size=(500, 1))
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = rng.integers(0, 10, size=500)
    empirical, exact = logit_fisher(p, y)
    eps = 1 - p[np.arange(500), y]
    assert (empirical <= 2 * eps**2 + 1e-12).all()
    assert (exact >= 2 * eps * (1 - eps) - 1e-12).all()


@pytest.mark.parametrize("bad", [np.ones((2, 3)), np.array([0.5, 0.5]), np.array([[1.5, -0.5]])])
def test_logit_fisher_refuses_non_probabilities(bad) -> None:
    with pytest.raises(ValueError):
        logit_fisher(bad, np.zeros(len(bad), dtype=int))


def test_logit_fisher_refuses_bad_labels() -> None:
    with pytest.raises(ValueError, match="lie in"):
        logit_fisher(np.array([[0.5, 0.5]]), np.array([2]))


def test_contraction_rate_is_below_one_exactly_inside_the_bound() -> None:
    mu = 0.9
    bound = 2 * (1 + mu)
    assert contraction_rate(0.99 * bound, mu) < 1 < contraction_rate(1.01 * bound, mu)
    # the complex range (1 − √μ)² < lr·h < (1 + √μ)² contracts at √μ whatever lr·h
    assert contraction_rate(1.0, mu) == pytest.approx(math.sqrt(mu))
    assert contraction_rate(3.5, mu) == pytest.approx(math.sqrt(mu))
    # plain gradient descent: |1 − lr·h|
    for lr_h in (0.3, 1.0, 1.7, 2.5):
        assert contraction_rate(lr_h, 0.0) == pytest.approx(abs(1 - lr_h))
    with pytest.raises(ValueError):
        contraction_rate(1.0, 1.0)


def test_heavy_ball_follows_sgd_and_its_rate() -> None:
    # μ = 0: x_t = (1 − lr·h)^t
    assert heavy_ball(0.5, 0.0, steps=5) == pytest.approx(0.5 ** np.arange(6))
    # one momentum step by hand: v1 = x0 = 1, x1 = 1 − a; v2 = μ + x1, x2 = x1 − a·v2
    a, mu = 0.3, 0.9
    x1 = 1 - a
    assert heavy_ball(a, mu, steps=2)[1:] == pytest.approx([x1, x1 - a * (mu + x1)])
    bound = 2 * (1 + mu)
    inside, outside = heavy_ball(0.95 * bound, mu, 300), heavy_ball(1.05 * bound, mu, 300)
    assert abs(inside[-1]) < 1e-5 < 1e5 < abs(outside[-1])
    # the long-run factor per step is the spectral radius
    assert abs(inside[-1] / inside[-101]) ** (1 / 100) == pytest.approx(
        contraction_rate(0.95 * bound, mu), rel=0.02)


def test_fisher_convergence_shrinks_with_n_and_is_zero_on_everything() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    X = torch.randn(400, 5)
    y = torch.randint(0, 3, (400,))
    before = torch.get_rng_state()
    errors = fisher_convergence(model, X, y, sizes=[5, 50, 400], kind="exact", repeats=4)
    assert torch.equal(before, torch.get_rng_state())  # the global RNG is untouched
    means = {n: float(np.mean(e)) for n, e in errors.items()}
    assert means[5] > means[50] > 1e-3 > 1e-6 > means[400]  # all 400: 0 up to rounding
    again = fisher_convergence(model, X, y, sizes=[5, 50, 400], kind="exact", repeats=4)
    assert again == errors  # deterministic per seed
    # one estimate by hand: the same subset as the function's first draw
    idx = torch.randperm(400, generator=torch.Generator().manual_seed(0))[:5]
    by_hand = relative_error(fisher_diagonal(model, X[idx], kind="exact"),
                             fisher_diagonal(model, X, kind="exact"))
    assert errors[5][0] == pytest.approx(by_hand)


def test_fisher_convergence_on_a_learner_and_refusals() -> None:
    model = MLP(hidden=(4,), seed=0)
    X = np.random.default_rng(0).integers(0, 255, size=(60, 1, 28, 28), dtype=np.uint8)
    y = np.arange(60) % 10
    errors = fisher_convergence(model, X, y, sizes=[10, 60], kind="empirical", repeats=2)
    assert max(errors[60]) < 1e-5 and min(errors[10]) > 1e-3
    with pytest.raises(ValueError, match="kind"):
        fisher_convergence(model, X, y, kind="sampled")
    with pytest.raises(ValueError, match="sizes"):
        fisher_convergence(model, X, y, sizes=[61])
    with pytest.raises(TypeError, match="sizes"):
        fisher_convergence(model, X, y, sizes=10)


def test_figures() -> None:
    lr_h = np.linspace(0.01, 4.5, 50)
    rates = {"μ = 0.9": [contraction_rate(v, 0.9) for v in lr_h]}
    paths = {"0.95 × bound": heavy_ball(3.61, 0.9, 50)}
    assert isinstance(plot_stability(lr_h, rates, paths, bound=3.8), Figure)
    bars = plot_bars({"5 epochs": {"emp": 1.0, "exact": 2.0}, "50": {"emp": 0.1, "exact": 1.0}},
                     "Σ F", "title", log=True)
    assert isinstance(bars, Figure)
    assert isinstance(plot_bars({"a": {"x": 50.0}}, "acc", "t", chance=10), Figure)
    with pytest.raises(ValueError):
        plot_bars({"a": {"x": 1.0}, "b": {"y": 1.0}}, "y", "t")
    with pytest.raises(ValueError):
        plot_bars({"a": {"x": 0.0}}, "y", "t", log=True)
    curve = plot_loglog([10, 100], {"exact": [[0.5, 0.6], [0.2]]}, "n", "err", "t",
                        guide=("1/√n", -0.5))
    assert isinstance(curve, Figure)
    with pytest.raises(ValueError):
        plot_loglog([10, 100], {"exact": [[0.5]]}, "n", "err", "t")
