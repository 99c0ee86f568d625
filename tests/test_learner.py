"""The learner API: training steps, inference, EWC wiring, bad input, non-finite steps."""

from __future__ import annotations

import copy
import inspect
import math
from typing import Any

import numpy as np
import pytest
import torch

from ewclab.fisher import fisher_diagonal
from ewclab.learner import DEFAULT_EWC_LAMBDA, Learner
from ewclab.models import MLP, AlexNet, TestNet


def _batch(n: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A learnable batch: the label is the brightest of 4 image quadrants (0-3)."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 60, (n, 1, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 4, n)
    for i, c in enumerate(y):
        r, s = divmod(int(c), 2)
        X[i, 0, 14 * r : 14 * r + 14, 14 * s : 14 * s + 14] += 150
    return X, y


def _mlp(**kwargs: Any) -> MLP:
    return MLP(num_classes=4, hidden=(32,), device="cpu", seed=0, **kwargs)


def _state(model: Any) -> dict:
    return copy.deepcopy({
        "model": model.state_dict(),
        "optimizer": model.optimizer.state_dict(),
        "ewc": model.ewc.state_dict(),
        "buffer": model.buffer.state_dict(),
    })


def _assert_same(a: Any, b: Any, where: str = "state") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, z) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, z, f"{where}[{i}]")
    else:
        assert a == b, where


def _trained_with_ewc(model: Any) -> Any:
    """A model with optimiser state, one consolidated task and a filled buffer."""
    X, y = _batch()
    for _ in range(3):
        model.partial_fit(X, y)
    model.consolidate(X, y)
    model.buffer.add("a", X, y)
    model.partial_fit(X, y)
    return model


@pytest.mark.parametrize("make", [_mlp, lambda: TestNet(num_classes=4, device="cpu", seed=0)])
def test_partial_fit_lowers_the_loss_on_a_fixed_batch(make):
    model = make()
    X, y = _batch()
    losses = [model.partial_fit(X, y) for _ in range(50)]
    assert isinstance(losses[0], float)
    assert np.mean(losses[-5:]) < 0.6 * losses[0]  # mean: TestNet's dropout makes it noisy


def test_partial_fit_is_one_step_and_keeps_the_mode():
    model = _mlp().eval()
    X, y = _batch()
    model.partial_fit(X, y)
    assert model.optimizer.state_dict()["state"][0]["momentum_buffer"] is not None
    assert not model.training


def test_same_seed_gives_identical_weights_twice():
    X, y = _batch()
    runs = []
    for seed in (3, 3, 4):
        torch.manual_seed(0)  # dropout draws from the global RNG
        model = TestNet(num_classes=4, device="cpu", seed=seed)
        model.fit(X, y, epochs=2, batch_size=8)
        runs.append(model.state_dict())
    _assert_same(runs[0], runs[1])
    assert not torch.equal(runs[0]["classifier.0.weight"], runs[2]["classifier.0.weight"])


def test_fit_trains_returns_self_and_shows_progress_on_request(capsys):
    X, y = _batch(64)
    model = _mlp()
    before = model.score(X, y)
    assert model.fit(X, y, epochs=5, batch_size=16) is model
    assert model.score(X, y) > max(before, 0.8)
    assert capsys.readouterr().err == ""
    model.fit(X, y, epochs=1, batch_size=16, progress=True)
    assert "4/4" in capsys.readouterr().err


def test_predict_proba_predict_score_are_consistent_and_restore_the_mode():
    X, y = _batch(40)
    model = TestNet(num_classes=4, device="cpu", seed=0).fit(X, y, epochs=3, batch_size=8)
    proba = model.predict_proba(X, batch_size=7)
    assert proba.shape == (40, 4) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert np.array_equal(model.predict(X, batch_size=9), proba.argmax(axis=1))
    assert model.score(X, y) == pytest.approx(np.mean(proba.argmax(axis=1) == y))
    assert model.training  # nn.Module default; inference ran in eval mode and restored it
    np.testing.assert_allclose(model.predict_proba(X), proba, rtol=1e-5)  # no dropout noise


def test_seed_layout_three_channel_uint8_and_float_tensors_are_accepted():
    model = AlexNet(width=0.1, device="cpu", seed=0)
    X, y = _batch(4)
    seed_X = np.transpose(np.repeat(X[:, 0, :, :, None], 3, axis=3), (0, 3, 1, 2))
    model.partial_fit(seed_X, y)
    model.partial_fit(X, y)  # 1 channel is repeated
    model.partial_fit(torch.from_numpy(X).float() / 255, torch.from_numpy(y))
    assert model.predict(seed_X).shape == (4,)


def test_ewc_lambda_is_the_ewc_strength_and_consolidate_applies_it():
    model = _mlp(ewc_lambda=5.0)
    assert model.ewc_lambda == model.ewc.lam == 5.0
    model.ewc_lambda = 7.0
    assert model.ewc.lam == 7.0
    X, y = _batch()
    model.partial_fit(X, y)
    fisher = model.consolidate(X, y)
    assert set(fisher) == {n for n, _ in model.named_parameters()}
    assert len(model.ewc.terms) == 1 and model.ewc.penalty().item() == 0.0
    model.partial_fit(*_batch(seed=1))
    assert model.ewc.penalty().item() > 0.0


def test_defaults_are_documented_and_non_zero():
    model = _mlp()
    default = inspect.signature(Learner.__init__).parameters["ewc_lambda"].default
    assert model.ewc_lambda == default == DEFAULT_EWC_LAMBDA > 0
    X, y = _batch()
    model.partial_fit(X, y)
    model.consolidate(X, y)
    model.partial_fit(*_batch(seed=1))
    assert model.ewc.penalty().item() > 0  # the default λ is not a silent zero
    assert model.device == torch.device("cpu")
    assert isinstance(model.optimizer, torch.optim.SGD)
    assert isinstance(_mlp(optimizer="adam").optimizer, torch.optim.Adam)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"lr": 0.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"momentum": 1.0}, "momentum"),
        ({"ewc_lambda": -1.0}, ""),
        ({"ewc_gamma": 0.0}, ""),
        ({"ewc_gamma": 1.5}, ""),
    ],
)
def test_bad_options_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message or None):
        _mlp(**kwargs)


X0, Y0 = _batch(8)
BAD_BATCHES = {
    "wrong ndim": (X0[:, 0], Y0),
    "NHWC": (X0.transpose(0, 2, 3, 1), Y0),
    "length mismatch": (X0, Y0[:5]),
    "label too large": (X0, np.full(8, 4)),
    "negative label": (X0, np.full(8, -1)),
    "NaN": (np.where(X0 > 100, np.nan, X0.astype(np.float32)), Y0),
    "inf": (np.full(X0.shape, np.inf, np.float32), Y0),
    "empty": (X0[:0], Y0[:0]),
    "too small": (X0[:, :, :10, :10], Y0),
    "float labels": (X0, Y0.astype(np.float32)),
    "no labels": (X0, None),
    "list": (X0.tolist(), Y0),
}


@pytest.fixture(scope="module")
def trained_testnet() -> TestNet:
    return _trained_with_ewc(TestNet(num_classes=4, device="cpu", seed=0))


@pytest.mark.parametrize("call", ["partial_fit", "fit", "consolidate", "score"])
@pytest.mark.parametrize("case", BAD_BATCHES)
def test_bad_input_raises_and_leaves_every_state_unchanged(case, call, trained_testnet):
    model = copy.deepcopy(trained_testnet)
    X, y = BAD_BATCHES[case]
    if call == "consolidate" and case == "no labels":
        return  # "exact"/"sampled" need no labels; "empirical" is covered below
    before = _state(model)
    with pytest.raises((ValueError, TypeError)):
        getattr(model, call)(X, y)
    _assert_same(_state(model), before)


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.consolidate(X0, None, fisher="empirical"),
        lambda m: m.consolidate(X0[:0], Y0[:0]),
        lambda m: setattr(m, "ewc_lambda", -1.0),
        lambda m: setattr(m, "ewc_lambda", float("inf")),
        lambda m: setattr(m.ewc, "gamma", 0.0),
        lambda m: setattr(m.ewc, "gamma", 1.01),
        lambda m: m.fit(X0, Y0, epochs=0),
        lambda m: m.fit(X0, Y0, batch_size=0),
    ],
)
def test_bad_settings_raise_and_leave_every_state_unchanged(change):
    model = _trained_with_ewc(_mlp())
    before = _state(model)
    with pytest.raises(ValueError):
        change(model)
    _assert_same(_state(model), before)


@pytest.mark.parametrize("first_step", [True, False])
def test_a_step_that_overflows_the_weights_is_undone(first_step):
    model = _mlp()
    X, y = _batch()
    if not first_step:
        model.partial_fit(X, y)
    before = _state(model)
    model.optimizer.param_groups[0]["lr"] = 1e10  # finite, but lr·g overflows float32
    hooks = [p.register_hook(lambda g: g * 1e30) for p in model.parameters()]
    with pytest.raises(FloatingPointError, match="step made the weights non-finite.*unchanged"):
        model.partial_fit(X, y)
    for hook in hooks:
        hook.remove()
    model.optimizer.param_groups[0]["lr"] = before["optimizer"]["param_groups"][0]["lr"]
    _assert_same(_state(model), before)
    model.partial_fit(X, y)  # and training goes on


def test_non_finite_loss_raises_and_changes_nothing():
    model = _trained_with_ewc(_mlp())
    before = _state(model)
    with pytest.raises(FloatingPointError, match="loss"):
        model.partial_fit(np.full(X0.shape, 3e38, np.float32), Y0)
    _assert_same(_state(model), before)


def test_non_finite_gradients_raise_before_the_optimiser_runs():
    model = _trained_with_ewc(_mlp())
    before = _state(model)
    weight = next(model.parameters())
    hook = weight.register_hook(lambda g: g * float("nan"))
    with pytest.raises(FloatingPointError, match="gradients"):
        model.partial_fit(X0, Y0)
    hook.remove()
    _assert_same(_state(model), before)


def test_diverging_ewc_training_stops_with_the_last_good_state():
    model = _mlp(ewc_lambda=1e12, lr=0.5)
    X, y = _batch()
    model.partial_fit(X, y)
    model.consolidate(X, y)
    Xb, yb = _batch(seed=1)
    yb = (yb + 1) % 4
    for _ in range(200):
        before = _state(model)
        try:
            model.partial_fit(Xb, yb)
        except FloatingPointError as err:
            assert "ewc_lambda" in str(err)
            break
    else:
        pytest.fail("λ·lr = 5e11 should diverge")
    _assert_same(_state(model), before)


def test_consolidate_uses_the_models_fisher_kind_unless_told():
    X, y = _batch()
    exact = _mlp(fisher="exact")
    exact.partial_fit(X, y)
    expected = fisher_diagonal(exact, X, y, kind="exact")
    got = exact.consolidate(X, y)
    assert all(torch.allclose(got[k], expected[k]) for k in expected)
    empirical = exact.consolidate(X, y, fisher="empirical")
    assert not all(torch.allclose(empirical[k], expected[k]) for k in expected)


def test_check_stability_refuses_lam_past_the_sgd_bound_and_changes_nothing():
    """lr·λ·max F < 2(1 + momentum): below passes, above raises naming the largest λ."""
    model = MLP(hidden=(8,), seed=0, lr=0.1, momentum=0.5)
    assert model.stability_limit() == pytest.approx(2 * 1.5 / 0.1)
    fisher = {n: torch.full_like(p, 0.01) for n, p in model.named_parameters()}
    model.ewc.add_task(fisher)
    model.ewc_lambda = 2999.0  # 0.1 * 2999 * 0.01 = 2.999 < 3
    model.check_stability()
    model.ewc_lambda = 3001.0
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"ewc_lambda=3001 will make SGD diverge.*< 3e\+03"):
        model.check_stability()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert MLP(hidden=(8,), optimizer="adam").stability_limit() == math.inf


def _full_state(model: Any) -> dict:
    return {**_state(model), "shuffle_rng": model.shuffle_rng.get_state().clone()}


def test_fit_is_all_or_nothing_when_a_later_step_fails():
    """A step failing mid-fit puts back the weights, optimiser and generator fit began with."""
    model = _mlp()
    X, y = _batch(64)
    model.fit(X, y, epochs=1, batch_size=16)
    before = _full_state(model)
    calls = [0]

    def nan_on_the_third_backward(g: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        return g * float("nan") if calls[0] == 3 else g

    hook = next(model.parameters()).register_hook(nan_on_the_third_backward)
    with pytest.raises(FloatingPointError, match="gradients are not finite.*unchanged"):
        model.fit(X, y, epochs=2, batch_size=16)
    hook.remove()
    assert calls[0] == 3  # two steps had been taken, and were undone
    _assert_same(_full_state(model), before)
    model.fit(X, y, epochs=1, batch_size=16)  # and training goes on


def test_a_diverging_fit_is_caught_at_the_loss_jump_and_a_smaller_lr_recovers():
    """lr = 50 blows the loss up within a few steps: fit stops at the jump, restores the
    model it started from, and the advice (a smaller lr) then trains it."""
    model = _mlp(lr=50.0)
    X, y = _batch(256)
    before = _full_state(model)
    with pytest.raises(FloatingPointError, match="loss jumped.*Lower lr"):
        model.fit(X, y, epochs=3, batch_size=32)
    _assert_same(_full_state(model), before)
    model.optimizer.param_groups[0]["lr"] = 0.05
    model.fit(X, y, epochs=5, batch_size=32)
    assert model.score(X, y) > 0.9


def test_partial_fit_checks_the_stability_bound_before_each_step():
    model = _trained_with_ewc(_mlp(lr=0.1))
    limit = model.ewc_lambda * model.stability_limit() / model.ewc.stiffness()
    model.ewc_lambda = 1.01 * limit
    before = _state(model)
    with pytest.raises(ValueError, match="will make SGD diverge"):
        model.partial_fit(X0, Y0)
    _assert_same(_state(model), before)
    model.ewc_lambda = 0.99 * limit
    assert math.isfinite(model.partial_fit(X0, Y0))


@pytest.mark.parametrize("call", ["partial_fit", "fit"])
def test_a_refused_step_of_a_dropout_model_leaves_the_global_rng_alone(call):
    """TestNet's dropout draws from torch's global generator during the forward pass, before
    the non-finite loss is seen; the refused call must put that generator back."""
    model = TestNet(4, seed=0)
    X, y = _batch()
    with torch.no_grad():
        model.classifier[-1].bias[0] = float("inf")  # the loss becomes non-finite
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    with pytest.raises(FloatingPointError, match="the loss is"):
        getattr(model, call)(X, y)
    assert torch.equal(torch.random.get_rng_state(), before)
