"""The λ-conventions helper: squared mini-batch gradients against a hand computation and
Jensen's bound, the equivalent λ of each convention giving ewclab's penalty, refusals."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from ewclab.conventions import Convention, equivalent_lams, squared_batch_gradients, table
from ewclab.fisher import fisher_diagonal
from ewclab.models import MLP

# f(x) = (w0·x, w1·x) with w = 0: p = (½, ½) and ∂CE/∂w_c = (p_c − [c = y]) x
X4 = torch.tensor([[1.0], [2.0], [-1.0], [2.0]])
Y4 = torch.tensor([0, 1, 0, 0])
# per-sample gradients: (−½, ½), (1, −1), (½, −½), (−1, 1)


def two_logits() -> nn.Linear:
    model = nn.Linear(1, 2, bias=False)
    nn.init.zeros_(model.weight)
    return model


def test_squared_batch_gradients_by_hand():
    model = two_logits()
    # b = 2: batch means (¼, −¼) and (−¼, ¼), squared 1/16 each, mean over batches 1/16
    out = squared_batch_gradients(model, X4, Y4, batch_size=2)
    torch.testing.assert_close(out["weight"], torch.full((2, 1), 0.0625))
    # b = 1 is the empirical Fisher: mean of squares (¼ + 1 + ¼ + 1) / 4 = 0.625
    torch.testing.assert_close(squared_batch_gradients(model, X4, Y4, batch_size=1)["weight"],
                               torch.full((2, 1), 0.625))
    # b = 4: the per-sample gradients cancel, the mean gradient is 0
    assert float(squared_batch_gradients(model, X4, Y4, batch_size=4)["weight"].abs().max()) == 0


def test_equivalent_lams_by_hand():
    rows = equivalent_lams(two_logits(), X4, Y4, lam=100.0, batch_size=2)
    got = {r.name: (r.half, r.ratio, r.lam) for r in rows}
    assert got["ewclab"] == (True, 1.0, 100.0)
    assert got["mean, no ½"] == (False, 1.0, 50.0)
    assert got["sum"] == (True, 4.0, 25.0)
    assert got["sum, no ½"] == (False, 4.0, 12.5)
    half, ratio, lam = got["batch b=2"]
    assert half and ratio == pytest.approx(0.1) and lam == pytest.approx(1000.0)
    assert got["batch b=2, no ½"][2] == pytest.approx(500.0)
    assert [r.name for r in rows][0] == "ewclab" and all(isinstance(r, Convention) for r in rows)
    text = table(rows)
    assert "batch b=2, no ½" in text and "500" in text and len(text.splitlines()) == 7


def test_no_lambda_matches_an_importance_that_is_zero():
    rows = equivalent_lams(two_logits(), X4, Y4, lam=10.0, batch_size=4)
    assert rows[-1].ratio == 0 and math.isinf(rows[-1].lam)


def mlp_task(n: int = 48):
    torch.manual_seed(0)
    model = MLP(num_classes=3, in_features=6, hidden=(8,), seed=0, device="cpu")
    X, y = torch.rand(n, 1, 2, 3), torch.randint(0, 3, (n,))
    model.fit(X, y, epochs=5, batch_size=8)
    return model, X, y


def test_equal_batches_never_exceed_the_fisher_and_b1_equals_it():
    model, X, y = mlp_task()
    F = fisher_diagonal(model, X, y, kind="empirical")
    one = squared_batch_gradients(model, X, y, batch_size=1)
    for b in (2, 8, 16):  # 48 samples: equal batches
        I_b = squared_batch_gradients(model, X, y, batch_size=b)
        for name in F:
            assert bool((I_b[name] <= F[name] * (1 + 1e-5) + 1e-12).all()), (b, name)
    for name in F:
        torch.testing.assert_close(one[name], F[name], rtol=1e-4, atol=1e-9)
        assert one[name].shape == F[name].shape and one[name].dtype == torch.float32


def test_each_equivalent_lambda_gives_ewclabs_penalty():
    """For a displacement of equal size on every weight, c · λ' · Σ I Δ² = λ/2 · Σ F Δ²."""
    model, X, y = mlp_task()
    lam = 300.0
    F = fisher_diagonal(model, X, y, kind="empirical")
    importances = {"mean": F, "sum": {k: len(y) * f for k, f in F.items()},
         "batch": squared_batch_gradients(model, X, y, batch_size=8)}
    delta = 0.01
    ours = 0.5 * lam * sum(float((f * delta**2).sum()) for f in F.values())
    for row in equivalent_lams(model, X, y, lam=lam, batch_size=8):
        key = row.name.split()[0].rstrip(",")
        imp = importances["mean" if key in ("ewclab", "mean") else key]
        c = 0.5 if row.half else 1.0
        theirs = c * row.lam * sum(float((i * delta**2).sum()) for i in imp.values())
        assert theirs == pytest.approx(ours, rel=1e-4), row.name


def test_refusals_change_nothing():
    model, X, y = mlp_task(16)
    weights = copy.deepcopy(model.state_dict())
    model.train()
    for kwargs, error in [
        (dict(lam=-1.0), ValueError), (dict(lam="1"), TypeError),
        (dict(lam=1.0, batch_size=0), ValueError), (dict(lam=1.0, kind="fast"), ValueError),
    ]:
        with pytest.raises(error):
            equivalent_lams(model, X, y, **kwargs)
    with pytest.raises(ValueError, match="labels"):
        squared_batch_gradients(model, X, None)
    with pytest.raises(ValueError):
        squared_batch_gradients(model, X, y[:3])
    with pytest.raises(ValueError, match="sample"):
        squared_batch_gradients(two_logits(), torch.empty(0, 1), torch.empty(0))
    assert model.training
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
