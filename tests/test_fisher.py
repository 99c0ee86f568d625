"""Diagonal Fisher: the batched estimators equal the per-sample loop and the hand formula.

The Fisher is the mean over samples of per-sample squared gradients of log p(label|x),
computed in eval mode (no dropout noise) with every submodule's mode restored afterwards.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from ewclab import fisher_sums
from ewclab.fisher import KINDS, fisher_diagonal, fisher_diagonal_reference
from ewclab.models import MLP, AlexNet, TestNet

TOLERANCE = 1e-5  # max relative error between estimators


def rel_err(a: dict[str, Tensor], b: dict[str, Tensor]) -> float:
    """Largest, over parameters, of max|a - b| / max|b|."""
    assert list(a) == list(b)
    return max(float((a[k] - b[k]).abs().max() / b[k].abs().max()) for k in b)


def seeded(seed: int = 7) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def modes(model: nn.Module) -> dict[str, bool]:
    return {name: module.training for name, module in model.named_modules()}


class DropoutMLP(nn.Module):
    """A plain nn.Module (no prepare_inputs) with dropout and an in-place ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(20, 16), nn.ReLU(inplace=True),
                                 nn.Dropout(0.5), nn.Linear(16, 5))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def make(name: str, n: int) -> tuple[nn.Module, Tensor, Tensor]:
    """A freshly seeded model in train mode with n random inputs and labels."""
    torch.manual_seed(0)
    if name == "mlp":
        model, X = MLP(seed=0, device="cpu"), torch.rand(n, 1, 28, 28)
    elif name == "dropout-mlp":
        model, X = DropoutMLP(), torch.randn(n, 20)
    elif name == "testnet":
        model, X = TestNet(seed=0, device="cpu"), torch.rand(n, 1, 28, 28)
    else:
        model, X = AlexNet(width=0.25, seed=0, device="cpu"), torch.rand(n, 3, 28, 28)
    classes = 5 if name == "dropout-mlp" else 10
    return model.train(), X, torch.randint(0, classes, (n,))


# MLP is the paper's network and has no dropout; the others have dropout layers.
SIZES = {"mlp": 12, "dropout-mlp": 12, "testnet": 12, "alexnet": 6}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(SIZES))
def test_batched_equals_per_sample_loop_in_eval_mode(name: str, kind: str) -> None:
    model, X, y = make(name, SIZES[name])
    has_dropout = any(isinstance(m, nn.Dropout) for m in model.modules())
    assert has_dropout == (name != "mlp")
    before = modes(model)
    assert all(before.values())  # train mode: dropout would be active if it were kept

    batched = fisher_diagonal(model, X, y, kind=kind, batch_size=5, generator=seeded())
    assert modes(model) == before
    reference = fisher_diagonal_reference(model, X, y, kind=kind, generator=seeded())
    assert modes(model) == before

    assert rel_err(batched, reference) <= TOLERANCE
    # the same estimate from an eval-mode copy: dropout played no part
    frozen = copy.deepcopy(model).eval()
    in_eval = fisher_diagonal(frozen, X, y, kind=kind, batch_size=5, generator=seeded())
    assert rel_err(batched, in_eval) <= TOLERANCE
    assert not any(modes(frozen).values())


def test_each_submodule_mode_is_restored() -> None:
    model, X, y = make("testnet", 4)
    model.features.eval()  # a mix: root and classifier train, features eval
    model.classifier[2].eval()  # the dropout layer
    before = modes(model)
    assert len(set(before.values())) == 2
    for kind in KINDS:
        fisher_diagonal(model, X, y, kind=kind)
        assert modes(model) == before
        fisher_diagonal_reference(model, X, y, kind=kind)
        assert modes(model) == before


def test_sampled_labels_come_from_the_generator() -> None:
    model, X, _ = make("mlp", 40)
    torch.manual_seed(1)
    a = fisher_diagonal(model, X, kind="sampled", generator=seeded(3))
    torch.manual_seed(2)  # the global RNG must not matter
    b = fisher_diagonal(model, X, kind="sampled", generator=seeded(3), batch_size=7)
    c = fisher_diagonal(model, X, kind="sampled", generator=seeded(4))
    assert rel_err(a, b) <= TOLERANCE
    assert rel_err(a, c) > 1e-2


# -- the hand formula on a single linear layer ------------------------------------------------
def linear_problem(n: int = 9) -> tuple[nn.Linear, np.ndarray, np.ndarray]:
    torch.manual_seed(0)
    layer = nn.Linear(4, 3)
    X = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    y = np.arange(n) % 3
    return layer, X, y


def softmax64(layer: nn.Linear, X: np.ndarray) -> np.ndarray:
    """p(c|x_n) in float64, rows n."""
    W = layer.weight.detach().double().numpy()
    z = X.astype(np.float64) @ W.T + layer.bias.detach().double().numpy()
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def hand_fisher(layer: nn.Linear, X: np.ndarray, y: np.ndarray | None) -> dict[str, np.ndarray]:
    """F = 1/N Σ_n Σ_c q_nc g_nc² with ∂ log p_c/∂W = (e_c − p) xᵀ and ∂ log p_c/∂b = e_c − p;
    q_n = one-hot of y_n, or p(·|x_n) when y is None (the exact Fisher)."""
    P = softmax64(layer, X)
    F_W, F_b = np.zeros(layer.weight.shape), np.zeros(layer.bias.shape)
    for n, (x, p) in enumerate(zip(X.astype(np.float64), P, strict=True)):
        q = p if y is None else np.eye(len(p))[y[n]]
        for c in range(len(p)):
            g_b = np.eye(len(p))[c] - p
            F_W += q[c] * np.outer(g_b, x) ** 2
            F_b += q[c] * g_b**2
    return {"weight": F_W / len(X), "bias": F_b / len(X)}


def assert_matches(fisher: dict[str, Tensor], hand: dict[str, np.ndarray]) -> None:
    assert list(fisher) == list(hand)
    for name, value in hand.items():
        np.testing.assert_allclose(fisher[name].double().numpy(), value, rtol=1e-5, atol=0)


@pytest.mark.parametrize("estimator", [fisher_diagonal, fisher_diagonal_reference])
def test_exact_is_the_expectation_over_the_models_own_prediction(estimator) -> None:
    layer, X, _ = linear_problem()
    hand = hand_fisher(layer, X, None)
    assert_matches(estimator(layer, X, kind="exact"), hand)
    # closed form of Σ_c p_c (e_c − p)_k² = p_k (1 − p_k)
    p = softmax64(layer, X)
    np.testing.assert_allclose(hand["bias"], (p * (1 - p)).mean(0), rtol=1e-12)


@pytest.mark.parametrize("estimator", [fisher_diagonal, fisher_diagonal_reference])
def test_empirical_uses_the_true_labels(estimator) -> None:
    layer, X, y = linear_problem()
    assert_matches(estimator(layer, X, y, kind="empirical"), hand_fisher(layer, X, y))


def test_sampled_is_an_unbiased_estimate_of_exact() -> None:
    layer, X, _ = linear_problem(3)
    many = np.repeat(X, 4000, axis=0)
    sampled = fisher_diagonal(layer, many, kind="sampled", generator=seeded(0))
    exact = fisher_diagonal(layer, X, kind="exact")
    assert rel_err(sampled, exact) < 0.05
    assert rel_err(fisher_diagonal(layer, X, kind="sampled", generator=seeded(0)), exact) > 0.05


def test_mean_of_squares_is_not_the_square_of_the_batch_mean() -> None:
    layer, X, y = linear_problem(64)
    fisher = fisher_diagonal(layer, X, y, kind="empirical")
    log_likelihood = torch.log_softmax(layer(torch.as_tensor(X)), -1)[np.arange(64), y].mean()
    mean_grad = torch.autograd.grad(log_likelihood, [layer.weight, layer.bias])
    square_of_mean = sum(float((g**2).sum()) for g in mean_grad)
    mean_of_squares = sum(float(f.sum()) for f in fisher.values())
    assert mean_of_squares > 5 * square_of_mean
    # and a mean, not a sum: the same samples twice give the same Fisher
    twice = fisher_diagonal(layer, np.concatenate([X, X]), np.concatenate([y, y]), kind="empirical")
    assert rel_err(twice, fisher) <= TOLERANCE


@pytest.mark.parametrize("kind", KINDS)
def test_batch_size_does_not_change_the_result(kind: str) -> None:
    model, X, y = make("testnet", 12)
    results = [
        fisher_diagonal(model, X, y, kind=kind, batch_size=b, generator=seeded())
        for b in (1, 7, 256)
    ]
    for other in results[1:]:
        assert rel_err(other, results[0]) <= TOLERANCE


# -- models the layer-wise path cannot take: the torch.func fallback ---------------------------
class Scaled(nn.Module):
    """A linear classifier with a learnable temperature (a bare nn.Parameter)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 4)
        self.log_scale = nn.Parameter(torch.tensor(0.3))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x) * self.log_scale.exp()


class Shared(nn.Module):
    """One Linear layer applied twice (weight sharing)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.out = nn.Linear(6, 4)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(torch.tanh(self.fc(torch.tanh(self.fc(x)))))


def batch_norm_net() -> nn.Module:
    net = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5),
                        nn.Linear(8, 4))
    with torch.no_grad():
        for _ in range(3):  # running statistics away from their initial values
            net(torch.randn(32, 6) * 2 + 1)
    return net


FALLBACK = {"batch-norm": batch_norm_net, "parameter": Scaled, "shared": Shared}


@pytest.fixture
def func_sums(monkeypatch: pytest.MonkeyPatch) -> list[nn.Module]:
    """Records the models handed to the torch.func fallback."""
    used: list[nn.Module] = []

    class Spy(fisher_sums.FuncSums):
        def __init__(self, model, params):
            used.append(model)
            super().__init__(model, params)

    monkeypatch.setattr(fisher_sums, "FuncSums", Spy)
    return used


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(FALLBACK))
def test_fallback_agrees_with_the_loop(name: str, kind: str, func_sums) -> None:
    torch.manual_seed(0)
    model = FALLBACK[name]().train()
    X, y = torch.randn(11, 6), torch.randint(0, 4, (11,))
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    before = modes(model)
    batched = fisher_diagonal(model, X, y, kind=kind, batch_size=4, generator=seeded())
    assert func_sums == [model]
    reference = fisher_diagonal_reference(model, X, y, kind=kind, generator=seeded())
    assert rel_err(batched, reference) <= TOLERANCE
    assert modes(model) == before
    for key, value in model.state_dict().items():  # batch norm statistics untouched
        assert torch.equal(value, buffers[key]), key


@pytest.mark.parametrize("name", ["mlp", "testnet", "alexnet"])
def test_plain_networks_take_the_layer_wise_path(name: str, func_sums) -> None:
    model, X, y = make(name, 2)
    fisher_diagonal(model, X, y)
    assert func_sums == []
    params = dict(model.named_parameters())
    assert fisher_sums.path(model, params, model.prepare_inputs(X[:1])[0]) == "per-layer"


@pytest.mark.parametrize("name", list(FALLBACK))
def test_the_path_says_why_a_network_needs_torch_func(name: str) -> None:
    model = FALLBACK[name]()
    assert fisher_sums.path(model, dict(model.named_parameters()), torch.randn(1, 6)) == \
        "torch.func"


# -- errors ---------------------------------------------------------------------------------
ERRORS = {  # case: (arguments from (X, y, number of classes), expected message)
    "unknown kind": (lambda X, y, k: dict(kind="fisher"), "kind must be one of"),
    "no labels": (lambda X, y, k: dict(y=None), "needs the true labels"),
    "label too large": (lambda X, y, k: dict(y=torch.tensor([0, 1, 2, 3, 4, k])), "labels must"),
    "negative label": (lambda X, y, k: dict(y=torch.tensor([0, 1, 2, 3, -1, 0])), "labels must"),
    "empty X": (lambda X, y, k: dict(X=X[:0], y=y[:0]), "sample"),
    "batch_size 0": (lambda X, y, k: dict(batch_size=0), "batch_size must be an int >= 1"),
    "batch_size -3": (lambda X, y, k: dict(batch_size=-3), "batch_size must be an int >= 1"),
}


@pytest.mark.parametrize("name", ["testnet", "dropout-mlp"])
@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_input_raises_and_restores_the_mode(name: str, case: str) -> None:
    model, X, y = make(name, 6)
    change, message = ERRORS[case]
    args = dict(X=X, y=y, kind="empirical", batch_size=4)  # a bad label lands in batch 2
    args.update(change(X, y, 5 if name == "dropout-mlp" else 10))
    dropout = [m for m in model.modules() if isinstance(m, nn.Dropout)][0]
    dropout.eval()  # modes differ between submodules
    before = modes(model)
    weights = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match=message):
        fisher_diagonal(model, args["X"], args["y"], args["kind"], args["batch_size"])
    assert modes(model) == before
    if not case.startswith("batch_size"):
        with pytest.raises(ValueError, match=message):
            fisher_diagonal_reference(model, args["X"], args["y"], args["kind"])
        assert modes(model) == before
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key]), key


def test_labels_of_the_wrong_length_raise() -> None:
    model, X, y = make("dropout-mlp", 6)
    with pytest.raises(ValueError, match=r"y must have shape \(6,\)"):
        fisher_diagonal(model, X, y[:5], kind="empirical")


def test_model_without_trainable_parameters_raises() -> None:
    model, X, y = make("dropout-mlp", 6)
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        fisher_diagonal(model, X, y)


# -- what comes back -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_result_is_a_detached_float32_dict_like_named_parameters(kind: str) -> None:
    model, X, y = make("testnet", 8)
    model.features[0].bias.requires_grad_(False)  # frozen parameters carry no Fisher
    weights = copy.deepcopy(model.state_dict())
    fisher = fisher_diagonal(model, X, y, kind=kind, generator=seeded())
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert list(fisher) == [n for n, _ in trainable]
    assert "features.0.bias" not in fisher
    for name, p in trainable:
        f = fisher[name]
        assert f.shape == p.shape and f.dtype == torch.float32 and f.device == p.device
        assert not f.requires_grad and f.grad_fn is None
        assert f.data_ptr() != p.data_ptr()
        assert bool((f >= 0).all()) and bool(torch.isfinite(f).all())
        assert float(f.sum()) > 0, f"{name}: an all-zero Fisher"
        assert p.grad is None  # no gradients left behind
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key]), key


def test_float64_model_gives_float32_fisher() -> None:
    layer, X, y = linear_problem()
    fisher = fisher_diagonal(layer.double(), X, y, kind="empirical")
    assert {f.dtype for f in fisher.values()} == {torch.float32}
    assert_matches(fisher, hand_fisher(layer, X, y))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", KINDS)
def test_cuda_matches_cpu(kind: str) -> None:
    X, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    cpu = fisher_diagonal(TestNet(seed=0, device="cpu"), X, y, kind=kind, generator=seeded())
    gpu = fisher_diagonal(TestNet(seed=0, device="cuda"), X, y, kind=kind,
                          generator=torch.Generator("cuda").manual_seed(7))
    assert list(gpu) == list(cpu) and all(f.is_cuda for f in gpu.values())
    if kind != "sampled":  # CUDA draws the sampled labels from another random stream
        assert rel_err({k: v.cpu() for k, v in gpu.items()}, cpu) <= 1e-3  # TF32 convolutions
