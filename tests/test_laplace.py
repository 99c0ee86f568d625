"""EWC's quadratic against task A's loss: the full-Fisher form, its diagonal, the actual rise."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ewclab.fisher import fisher_diagonal
from ewclab.laplace import quadratic_check


def _problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    layer = nn.Linear(4, 3)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    X, y = torch.randn(20, 4, generator=g), torch.randint(0, 3, (20,), generator=g)
    anchor = {n: p.detach().clone() for n, p in layer.named_parameters()}
    fisher = fisher_diagonal(layer, X, kind="exact")
    moved = copy.deepcopy(layer)
    with torch.no_grad():
        for p in moved.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return layer, moved, X, y, anchor, fisher


def _full_fisher(layer: nn.Linear, X: torch.Tensor) -> torch.Tensor:
    """F = 1/N Σ_n Σ_c p_c g_c g_cᵀ over the flattened (weight, bias), by hand."""
    params = list(layer.parameters())
    total = torch.zeros(sum(p.numel() for p in params), sum(p.numel() for p in params))
    for x in X:
        log_p = torch.log_softmax(layer(x[None]), -1)[0]
        for c in range(len(log_p)):
            g = torch.cat([t.flatten() for t in torch.autograd.grad(log_p[c], params,
                                                                    retain_graph=True)])
            total += log_p[c].exp().detach() * torch.outer(g, g)
    return total / len(X)


def test_matches_a_hand_computed_full_and_diagonal_quadratic():
    layer, moved, X, y, anchor, fisher = _problem()
    result = quadratic_check(moved, X, y, anchor, fisher)
    delta = torch.cat([(p.detach() - anchor[n]).flatten() for n, p in moved.named_parameters()])
    full = _full_fisher(layer, X)
    assert result["full"] == pytest.approx(0.5 * float(delta @ full @ delta), rel=1e-4)
    assert result["diagonal"] == pytest.approx(0.5 * float(torch.diag(full) @ delta**2), rel=1e-4)
    with torch.no_grad():
        rise = F.cross_entropy(moved(X), y) - F.cross_entropy(layer(X), y)
    assert result["actual"] == pytest.approx(float(rise), rel=1e-5)


def test_at_the_anchor_everything_is_zero_and_nothing_changes():
    layer, _, X, y, anchor, fisher = _problem(1)
    layer.train()
    before = copy.deepcopy(layer.state_dict())
    result = quadratic_check(layer, X, y, anchor, fisher)
    assert result == {"actual": 0.0, "full": 0.0, "diagonal": 0.0}
    assert layer.training
    for key, value in layer.state_dict().items():
        assert torch.equal(value, before[key])


def test_mismatched_anchor_or_fisher_is_refused():
    layer, moved, X, y, anchor, fisher = _problem(2)
    with pytest.raises(ValueError, match="anchor"):
        quadratic_check(moved, X, y, {"weight": anchor["weight"]}, fisher)
    with pytest.raises(ValueError, match="fisher"):
        quadratic_check(moved, X, y, anchor, {**fisher, "bias": torch.zeros(5)})
