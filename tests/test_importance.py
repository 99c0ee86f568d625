"""SI and MAS importances against hand computations on tiny models, the learner loop, and
the shape, dtype and no-mutation promises they share with the Fisher."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ewclab.ewc import EWC
from ewclab.importance import PathIntegral, mas_importance, mas_importance_reference
from ewclab.models import MLP, AlexNet, TestNet


def two_weights(w1: float, w2: float) -> nn.Linear:
    """f(x) = w1·x1 + w2·x2: the model whose numbers can be written down."""
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[w1, w2]]))
    return model


def sgd_steps(model: nn.Module, tracker: PathIntegral, steps: int, ewc: EWC | None = None):
    """Plain SGD (lr 0.1) on L = ½ (w·x − y)² with x = (1, 2), y = 0, plus the penalty."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0]])
    for _ in range(steps):
        opt.zero_grad()
        loss = 0.5 * ((model(x) - y) ** 2).sum()
        if ewc is not None:
            loss = loss + ewc.penalty()
        loss.backward()
        opt.step()
        tracker.update()


def test_si_path_integral_matches_the_hand_computation():
    # w = (1, −1): f = −1, g = (f − y)x = (−1, −2), Δw = −0.1 g = (0.1, 0.2), −g·Δw = (0.1, 0.4)
    # w = (1.1, −0.8): f = −0.5, g = (−0.5, −1), Δw = (0.05, 0.1), −g·Δw = (0.025, 0.1)
    model = two_weights(1.0, -1.0)
    tracker = PathIntegral(model, damping=0.1)
    sgd_steps(model, tracker, steps=2)
    assert tracker.steps == 2
    torch.testing.assert_close(tracker.omega["weight"], torch.tensor([[0.125, 0.5]]))
    # Δ over the task = (0.15, 0.3): Ω = ω / (Δ² + ξ) = (0.125 / 0.1225, 0.5 / 0.19)
    omega = tracker.importance()
    torch.testing.assert_close(omega["weight"], torch.tensor([[0.125 / 0.1225, 0.5 / 0.19]]))


def test_si_integrates_the_task_loss_gradient_not_the_penalised_one():
    # penalty λ/2 · 2 · w1² (F = (2, 0), θ* = 0, λ = 1): its gradient (2 w1, 0) = (2, 0)
    model = two_weights(0.0, 0.0)
    ewc = EWC(model, lam=1.0)
    ewc.add_task({"weight": torch.tensor([[2.0, 0.0]])})
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -1.0]]))
    tracker = PathIntegral(model, ewc=ewc, damping=0.1)
    sgd_steps(model, tracker, steps=1, ewc=ewc)
    # the step follows the total gradient (−1 + 2, −2) = (1, −2): Δw = (−0.1, 0.2);
    # SI uses the task gradient (−1, −2): ω = −g·Δw = (−0.1, 0.4) (the total one: (0.1, 0.4))
    torch.testing.assert_close(tracker.omega["weight"], torch.tensor([[-0.1, 0.4]]))
    # Ω clips the negative ω at 0: (0, 0.4 / (0.2² + 0.1))
    torch.testing.assert_close(tracker.importance()["weight"], torch.tensor([[0.0, 0.4 / 0.14]]))


def tiny_learner(**options) -> MLP:
    return MLP(num_classes=3, in_features=4, hidden=(5,), seed=0, device="cpu", **options)


def test_si_in_the_learner_loop_equals_the_task_gradient_path_integral():
    """partial_fit (with momentum and a consolidated EWC term) + update() gives
    Σ −∇CE(θ_before)·Δθ, with ∇CE computed separately by autograd."""
    torch.manual_seed(0)
    learner = tiny_learner(ewc_lambda=5.0)
    X, y = torch.rand(12, 1, 2, 2), torch.randint(0, 3, (12,))
    learner.partial_fit(X, y)
    learner.consolidate(X, y)
    tracker = PathIntegral(learner, ewc=learner.ewc)
    expected = {n: torch.zeros_like(p) for n, p in learner.named_parameters()}
    for k in range(4):
        Xb, yb = X[3 * k : 3 * k + 3], y[3 * k : 3 * k + 3]
        before = {n: p.detach().clone() for n, p in learner.named_parameters()}
        x_in, _ = learner.prepare_inputs(Xb)
        params = list(learner.parameters())
        task_grads = torch.autograd.grad(F.cross_entropy(learner(x_in), yb), params)
        learner.partial_fit(Xb, yb)
        tracker.update()
        for (n, p), g in zip(learner.named_parameters(), task_grads, strict=True):
            expected[n] -= g * (p.detach() - before[n])
    for n in expected:
        torch.testing.assert_close(tracker.omega[n], expected[n], rtol=1e-4, atol=1e-7)
    assert any(float(v.abs().max()) > 0 for v in expected.values())


def test_si_importance_plugs_into_the_penalty_and_mutates_nothing():
    torch.manual_seed(1)
    learner = tiny_learner()
    X, y = torch.rand(8, 1, 2, 2), torch.randint(0, 3, (8,))
    tracker = PathIntegral(learner, ewc=learner.ewc)
    for _ in range(3):
        learner.partial_fit(X, y)
        tracker.update()
    weights = copy.deepcopy(learner.state_dict())
    state = {k: v.clone() for k, v in tracker.omega.items()}
    omega = tracker.importance()
    again = tracker.importance()
    for (name, p), (key, value) in zip(learner.named_parameters(), omega.items(), strict=True):
        assert key == name and value.shape == p.shape and value.dtype == torch.float32
        assert bool((value >= 0).all()) and not value.requires_grad
        torch.testing.assert_close(value, again[key])
    for k, v in learner.state_dict().items():
        assert torch.equal(v, weights[k])
    for k, v in tracker.omega.items():
        assert torch.equal(v, state[k])
    learner.ewc.add_task(omega)
    with torch.no_grad():
        for p in learner.parameters():
            p.add_(0.1)
    assert float(learner.ewc.penalty().detach()) > 0


def test_si_reset_starts_a_new_task():
    model = two_weights(1.0, -1.0)
    tracker = PathIntegral(model)
    sgd_steps(model, tracker, steps=2)
    tracker.reset()
    assert tracker.steps == 0 and float(tracker.omega["weight"].abs().max()) == 0
    torch.testing.assert_close(tracker.start["weight"], model.weight.detach())


def test_si_a_step_that_changed_nothing_adds_nothing():
    model = two_weights(1.0, -1.0)
    tracker = PathIntegral(model)
    model.weight.grad = torch.tensor([[5.0, 5.0]])  # a gradient, but no step taken
    tracker.update()
    assert float(tracker.omega["weight"].abs().max()) == 0


@pytest.mark.parametrize("damping, error", [(0, ValueError), (-1.0, ValueError),
                                            (float("nan"), ValueError), ("0.1", TypeError)])
def test_si_refuses_bad_damping(damping, error):
    with pytest.raises(error, match="damping"):
        PathIntegral(two_weights(1.0, 1.0), damping=damping)


def test_si_refuses_bad_model_and_ewc():
    with pytest.raises(TypeError, match="model"):
        PathIntegral("not a model")
    with pytest.raises(TypeError, match="ewc"):
        PathIntegral(two_weights(1.0, 1.0), ewc=3)


def test_si_refuses_changed_parameters_and_keeps_its_state():
    model = two_weights(1.0, -1.0)
    tracker = PathIntegral(model)
    sgd_steps(model, tracker, steps=1)
    before = tracker.omega["weight"].clone()
    model.extra = nn.Linear(1, 1)  # a new trainable parameter
    with pytest.raises(ValueError, match="changed"):
        tracker.update()
    assert torch.equal(tracker.omega["weight"], before) and tracker.steps == 1


# -- MAS ---------------------------------------------------------------------------------
def test_mas_matches_the_hand_computation_per_sample_absolute_values():
    # f = w·x with w = (1, 0.5); ∂f²/∂w = 2 f x
    # x_a = (1, 2): f = 2, gradient (4, 8);  x_b = (3, −4): f = 1, gradient (6, −8)
    # mean of per-sample |gradient| = (5, 8)  (|mean gradient| would be (5, 0))
    model = two_weights(1.0, 0.5)
    X = torch.tensor([[1.0, 2.0], [3.0, -4.0]])
    expected = torch.tensor([[5.0, 8.0]])
    torch.testing.assert_close(mas_importance(model, X)["weight"], expected)
    torch.testing.assert_close(mas_importance(model, X, batch_size=1)["weight"], expected)
    torch.testing.assert_close(mas_importance_reference(model, X)["weight"], expected)


def test_mas_uses_the_squared_l2_norm_of_a_vector_output():
    # f = W x, W = diag(1, 2), x = (1, 1): f = (1, 2), ∂‖f‖²/∂W_ij = 2 f_i x_j
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    omega = mas_importance(model, torch.tensor([[1.0, 1.0]]))
    torch.testing.assert_close(omega["weight"], torch.tensor([[2.0, 2.0], [4.0, 4.0]]))


@pytest.mark.parametrize("name, batch_size", [("mlp", 3), ("mlp", None), ("testnet", 3),
                                              ("alexnet", None)])
def test_mas_batched_equals_the_per_sample_loop(name, batch_size):
    torch.manual_seed(0)
    if name == "mlp":
        model, X = MLP(hidden=(16,), seed=0, device="cpu"), torch.rand(7, 1, 28, 28)
    elif name == "testnet":
        model, X = TestNet(seed=0, device="cpu"), torch.rand(7, 1, 28, 28)
    else:
        model, X = AlexNet(width=0.125, seed=0, device="cpu"), torch.rand(5, 3, 28, 28)
    fast = mas_importance(model, X, batch_size=batch_size)
    slow = mas_importance_reference(model, X)
    assert list(fast) == [n for n, _ in model.named_parameters()]
    for n, p in model.named_parameters():
        assert fast[n].shape == p.shape and fast[n].dtype == torch.float32
        torch.testing.assert_close(fast[n], slow[n], rtol=1e-4, atol=1e-6)


def test_mas_runs_in_eval_mode_restores_modes_and_mutates_nothing():
    torch.manual_seed(0)
    model = TestNet(seed=0, device="cpu")  # has dropout: train mode would be random
    model.train()
    model.classifier[2].eval()  # a submodule in its own mode stays so
    weights = copy.deepcopy(model.state_dict())
    X = torch.rand(5, 1, 28, 28)
    rng = torch.random.get_rng_state()
    a, b = mas_importance(model, X), mas_importance(model, X)
    for k in a:
        assert torch.equal(a[k], b[k])
    assert model.training and not model.classifier[2].training
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert torch.equal(torch.random.get_rng_state(), rng)


def test_mas_plugs_into_the_penalty():
    learner = tiny_learner(ewc_lambda=2.0)
    omega = mas_importance(learner, torch.rand(6, 1, 2, 2))
    learner.ewc.add_task(omega)
    with torch.no_grad():
        for p in learner.parameters():
            p.add_(0.1)
    expected = 0.5 * 2.0 * sum(float((o * 0.01).sum()) for o in omega.values())
    assert float(learner.ewc.penalty().detach()) == pytest.approx(expected, rel=1e-4)


def test_mas_refuses_bad_input_without_change():
    learner = tiny_learner()
    weights = copy.deepcopy(learner.state_dict())
    with pytest.raises(ValueError, match="batch_size"):
        mas_importance(learner, torch.rand(3, 1, 2, 2), batch_size=0)
    with pytest.raises(ValueError):
        mas_importance(learner, torch.rand(3, 1, 3, 3))  # 9 features, the MLP wants 4
    with pytest.raises(ValueError, match="sample"):
        mas_importance(two_weights(1.0, 1.0), torch.empty(0, 2))
    with pytest.raises(TypeError, match="model"):
        mas_importance("model", torch.rand(3, 2))
    assert all(torch.equal(v, weights[k]) for k, v in learner.state_dict().items())
