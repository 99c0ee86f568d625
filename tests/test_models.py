"""The networks: documented parameter counts, input sizes, pooling, seeded initialisation."""

from __future__ import annotations

import re

import pytest
import torch

from ewclab.data import load_task
from ewclab.models import MLP, AlexNet, TestNet


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _documented(doc: str, pattern: str) -> int:
    match = re.search(pattern, " ".join(doc.split()))
    assert match, f"no parameter count matching {pattern!r} in the docstring"
    return int(match.group(1).replace(",", ""))


@pytest.mark.parametrize("width", ["1.0", "0.25"])
def test_alexnet_documented_parameter_counts(width):
    documented = _documented(AlexNet.__doc__, rf"([\d,]+) at ``width={width}``")
    assert _n_params(AlexNet(width=float(width), device="cpu")) == documented


def test_testnet_documented_parameter_count():
    documented = _documented(TestNet.__doc__, r"([\d,]+) parameters")
    assert _n_params(TestNet(device="cpu")) == documented


@pytest.mark.parametrize("size, batch", [(28, 4), (32, 4), (224, 2)])
def test_alexnet_trains_on_28_32_and_224(size, batch):
    model = AlexNet(width=0.25, device="cpu", seed=0)
    X = torch.rand(batch, 3, size, size)
    assert model(X).shape == (batch, 10)
    before = [p.detach().clone() for p in model.parameters()]
    assert torch.isfinite(torch.tensor(model.partial_fit(X, torch.arange(batch))))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize(
    "size, pool, side",
    [(224, "auto", 6), (28, "auto", 6), (32, "auto", 7), (64, "auto", 7), (224, "never", 55),
     (224, "always", 6)],
)
def test_auto_pools_only_while_the_map_stays_at_least_6x6(size, pool, side):
    # 224: 55 -> 27 -> 13 -> 6 (all three pools, torchvision's AlexNet); 28: conv1 gives 6x6
    # and no pool applies; 64: 15 -> 7, then 7 would pool to 3 and is kept
    model = AlexNet(width=0.25, pool=pool, device="cpu", seed=0)
    assert model.features(torch.rand(1, 3, size, size)).shape[-1] == side


def test_pool_always_needs_large_images():
    model = AlexNet(width=0.25, pool="always", device="cpu")
    with pytest.raises(ValueError, match="too small.*63x63"):
        model.predict(torch.rand(1, 3, 32, 32))


@pytest.mark.parametrize("kwargs", [{"width": 0}, {"width": -1.0}, {"pool": "sometimes"}])
def test_alexnet_rejects_bad_architecture(kwargs):
    with pytest.raises(ValueError, match="width|pool"):
        AlexNet(device="cpu", **kwargs)


def test_testnet_and_mlp_shapes():
    assert TestNet(device="cpu")(torch.rand(5, 1, 28, 28)).shape == (5, 10)
    assert TestNet(num_classes=3, in_channels=3, device="cpu")(torch.rand(2, 3, 16, 16)).shape == (
        2, 3,
    )
    mlp = MLP(num_classes=4, in_features=12, hidden=(8,), device="cpu")
    assert mlp(torch.rand(3, 3, 2, 2)).shape == (3, 4)
    assert _n_params(mlp) == 12 * 8 + 8 + 8 * 4 + 4
    assert _n_params(MLP(device="cpu")) == 784 * 400 + 400 + 400 * 400 + 400 + 400 * 10 + 10


def test_testnet_has_dropout_in_its_fully_connected_part():
    model = TestNet(device="cpu", seed=0).train()
    X = torch.rand(8, 1, 28, 28)
    assert not torch.equal(model(X), model(X))
    model.eval()
    assert torch.equal(model(X), model(X))


@pytest.mark.parametrize("cls", [TestNet, MLP, AlexNet])
def test_seed_fixes_initial_weights_and_leaves_the_global_rng_alone(cls):
    kwargs = {"width": 0.25} if cls is AlexNet else {}
    state = torch.get_rng_state()
    a = cls(seed=1, device="cpu", **kwargs)
    assert torch.equal(torch.get_rng_state(), state)
    b = cls(seed=1, device="cpu", **kwargs)
    c = cls(seed=2, device="cpu", **kwargs)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters(),
                                                          strict=True))


@pytest.mark.parametrize("width", [1.0, 0.25])
def test_alexnet_has_he_initialisation(width):
    model = AlexNet(width=width, device="cpu", seed=0)
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(layers) == 8
    for layer in layers:
        fan_in = layer.weight[0].numel()
        assert layer.weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.1)
        assert not layer.bias.any()


def test_alexnet_logits_and_first_layer_gradients_do_not_vanish_at_initialisation():
    # measured on 5 seeds: He init gives logits of std 0.18-0.39 and a first-layer gradient
    # norm of 0.6-0.9; PyTorch's default init (variance 1 / (3 fan_in)) gave ~0.02 and
    # ~0.0004, and SGD then sat at ln 10 for hundreds of steps
    mnist = load_task("mnist")
    X = torch.as_tensor(mnist.x_train[:64], dtype=torch.float32)[:, None].repeat(1, 3, 1, 1) / 255
    model = AlexNet(width=0.25, device="cpu", seed=0).eval()
    logits = model(X)  # (64, 10)
    assert logits.std().item() > 0.05
    torch.nn.functional.cross_entropy(logits, torch.as_tensor(mnist.y_train[:64])).backward()
    assert model.features[0].weight.grad.norm().item() > 0.05


def test_testnet_width_scales_channels_and_hidden_layer():
    # 10w, 20w, 50w: conv 1->20 (5x5), conv 20->40 (5x5), FC 640->100, FC 100->10 at w = 2
    model = TestNet(width=2.0, device="cpu")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    fcs = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [c.out_channels for c in convs] == [20, 40]
    assert [(f.in_features, f.out_features) for f in fcs] == [(640, 100), (100, 10)]
    assert _n_params(model) == (25 * 20 + 20) + (20 * 25 * 40 + 40) + (640 * 100 + 100) + (
        100 * 10 + 10)
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_testnet_width_one_is_the_default_network():
    default, explicit = TestNet(seed=3, device="cpu"), TestNet(width=1.0, seed=3, device="cpu")
    assert _n_params(default) == _n_params(explicit) == 21_840
    for a, b in zip(default.parameters(), explicit.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "width, error",
    [(0, ValueError), (-1.0, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
     ("2", TypeError), (True, TypeError), (None, TypeError)],
)
def test_testnet_rejects_a_bad_width(width, error):
    state = torch.get_rng_state()
    with pytest.raises(error, match="width must be"):
        TestNet(width=width, device="cpu")
    assert torch.equal(torch.get_rng_state(), state)


def test_testnet_width_survives_save_and_load(tmp_path):
    model = TestNet(width=1.5, seed=0, device="cpu")
    X = torch.rand(4, 1, 28, 28)
    model.partial_fit(X, torch.arange(4))
    path = str(tmp_path / "testnet.pt")
    model.save(path)
    loaded = TestNet.load(path, device="cpu")
    assert isinstance(loaded, TestNet)
    assert [m.out_channels for m in loaded.modules() if isinstance(m, torch.nn.Conv2d)] == [15, 30]
    assert _n_params(loaded) == _n_params(model)
    model.eval()
    loaded.eval()
    assert torch.equal(loaded(X), model(X))
