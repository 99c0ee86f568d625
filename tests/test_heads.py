"""MultiHead: the task label routes the forward pass, training, prediction and the Fisher
to one head; it saves, loads and refuses bad settings without change."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from ewclab import persist
from ewclab.fisher import fisher_diagonal
from ewclab.heads import MultiHead
from ewclab.models import MLP

ARCH = {"in_features": 4, "hidden": (5,)}


def multi(**options) -> MultiHead:
    return MultiHead("MLP", heads=3, classes_per_head=2, base_arch=ARCH, seed=0, device="cpu",
                     **options)


def test_each_head_is_its_slice_of_the_base_network():
    model = multi()
    base = MLP(num_classes=6, **ARCH, seed=0, device="cpu")  # same build, same seed
    x = torch.rand(7, 1, 2, 2)
    full = base(x)  # (7, 6)
    for k in range(3):
        model.task = k
        out = model(x)
        assert out.shape == (7, 2)
        torch.testing.assert_close(out, full[:, 2 * k : 2 * k + 2])
    assert model.spec.num_classes == 2 and model.config["base_arch"] == {**ARCH}


def test_training_one_head_leaves_the_other_heads_unchanged():
    model = multi()
    last = model.net[-1]
    before = last.weight.detach().clone(), last.bias.detach().clone()
    first_layer = model.net[1].weight.detach().clone()
    model.task = 1
    X, y = torch.rand(8, 1, 2, 2), torch.tensor([0, 1] * 4)
    for _ in range(3):
        model.partial_fit(X, y)
    rows = [2, 3]
    others = [0, 1, 4, 5]
    assert torch.equal(last.weight[others], before[0][others])
    assert torch.equal(last.bias[others], before[1][others])
    assert not torch.equal(last.weight[rows], before[0][rows])
    assert not torch.equal(model.net[1].weight, first_layer)  # the shared body learns


def test_predict_and_score_follow_the_head_and_use_head_puts_it_back():
    model = multi()
    with torch.no_grad():  # head 0 always says 0, head 1 always says 1, head 2 says 0
        model.net[-1].weight.zero_()
        model.net[-1].bias.copy_(torch.tensor([5.0, 0.0, 0.0, 5.0, 5.0, 0.0]))
    X = np.random.default_rng(0).random((6, 1, 2, 2)).astype(np.float32)
    model.task = 2
    with model.use_head(1) as m:
        assert m.task == 1
        assert np.array_equal(model.predict(X), np.ones(6))
        assert model.score(X, np.ones(6, dtype=np.int64)) == 1.0
    assert model.task == 2
    with model.use_head(0):
        assert np.array_equal(model.predict(X), np.zeros(6))
    with pytest.raises(RuntimeError), model.use_head(1):
        raise RuntimeError("inside the block")
    assert model.task == 2


def test_the_fisher_of_one_head_is_zero_on_the_other_heads():
    model = multi()
    model.task = 2
    X, y = torch.rand(10, 1, 2, 2), torch.tensor([0, 1] * 5)
    F = fisher_diagonal(model, X, y, kind="empirical")
    w = F["net.3.weight"]
    assert float(w[:4].abs().max()) == 0 and float(w[4:].min()) >= 0 and float(w[4:].max()) > 0
    assert model.task == 2


def test_labels_are_checked_against_the_head_and_nothing_changes():
    model = multi()
    weights = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        model.partial_fit(torch.rand(4, 1, 2, 2), torch.tensor([0, 1, 2, 3]))
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("value, error", [(-1, ValueError), (3, ValueError),
                                          (1.0, TypeError), ("1", TypeError)])
def test_task_refuses_bad_values_and_keeps_the_head(value, error):
    model = multi()
    model.task = 1
    with pytest.raises(error, match="task"):
        model.task = value
    with pytest.raises(error, match="task"), model.use_head(value):
        pass
    assert model.task == 1


def test_save_and_load_keep_every_head(tmp_path):
    model = multi(ewc_lambda=3.0)
    model.task = 1
    model.partial_fit(torch.rand(6, 1, 2, 2), torch.tensor([0, 1] * 3))
    path = tmp_path / "multi.pt"
    model.save(path)
    loaded = persist.load(path)
    assert isinstance(loaded, MultiHead) and loaded.config == model.config
    x = torch.rand(5, 1, 2, 2)
    for k in range(3):
        with model.use_head(k), loaded.use_head(k):
            torch.testing.assert_close(loaded(x), model(x))


def test_other_bases_route_too():
    model = MultiHead("TestNet", heads=2, classes_per_head=3, seed=0, device="cpu")
    x = torch.rand(2, 1, 28, 28)
    model.eval()
    a = model(x)
    model.task = 1
    assert a.shape == model(x).shape == (2, 3) and not torch.equal(a, model(x))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(base="ResNet"), ValueError, "base must be one of"),
        (dict(base=MLP), TypeError, "base"),
        (dict(base="MultiHead"), ValueError, "base must be one of"),
        (dict(heads=0), ValueError, "heads"),
        (dict(classes_per_head=1.5), TypeError, "classes_per_head"),
        (dict(base_arch={"num_classes": 10}), ValueError, "base_arch"),
        (dict(base_arch={"lr": 0.1}), ValueError, "base_arch"),
        (dict(base_arch=[("hidden", (3,))]), TypeError, "base_arch"),
        (dict(base_arch={"hidden": (0,)}), ValueError, "hidden"),
        (dict(base_arch={"depth": 3}), TypeError, "depth"),
    ],
)
def test_bad_settings_are_refused_before_building(kwargs, error, match):
    rng = torch.random.get_rng_state()
    with pytest.raises(error, match=match):
        MultiHead(**kwargs)
    assert torch.equal(torch.random.get_rng_state(), rng)


def test_use_heads_routes_each_sample_of_a_mixed_batch():
    model = multi()
    x = torch.rand(5, 1, 2, 2)
    heads = [2, 0, 0, 1, 2]
    model.task = 1
    with model.use_heads(heads):
        mixed = model(x)
    assert mixed.shape == (5, 2) and model.task == 1 and model._sample_heads is None
    for n, k in enumerate(heads):
        with model.use_head(k):
            torch.testing.assert_close(mixed[n], model(x)[n])
    with model.use_heads(torch.tensor(heads)):
        torch.testing.assert_close(model(x), mixed)


def test_one_step_on_a_mixed_batch_trains_only_the_heads_it_names():
    model = multi()
    last = model.net[-1]
    before = last.weight.detach().clone()
    X, y = torch.rand(6, 1, 2, 2), torch.tensor([0, 1, 0, 1, 0, 1])
    with model.use_heads([0, 0, 0, 2, 2, 2]):
        model.partial_fit(X, y)
    assert torch.equal(last.weight[[2, 3]], before[[2, 3]])  # head 1 untouched
    assert not torch.equal(last.weight[[0, 1]], before[[0, 1]])
    assert not torch.equal(last.weight[[4, 5]], before[[4, 5]])


@pytest.mark.parametrize("heads, error", [([0, 3], ValueError), ([0, -1], ValueError),
                                          ([0, 1.0], TypeError), ("01", TypeError),
                                          (3, TypeError), ([], ValueError)])
def test_use_heads_refuses_bad_heads(heads, error):
    model = multi()
    with pytest.raises(error, match="heads"), model.use_heads(heads):
        pass
    assert model._sample_heads is None


def test_use_heads_needs_one_head_per_sample_and_changes_nothing_when_refused():
    model = multi()
    weights = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match="one head per sample"), model.use_heads([0, 1]):
        model.partial_fit(torch.rand(3, 1, 2, 2), torch.tensor([0, 1, 0]))
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
