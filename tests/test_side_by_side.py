"""K copies trained side by side equal K serial runs (weights per step, optimiser state,
accuracies), dropout included; bad input and diverging copies change nothing."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

from ewclab.fisher import fisher_diagonal
from ewclab.learner import DivergenceError, Learner
from ewclab.models import MLP, TestNet
from ewclab.scenarios import get_scenario
from ewclab.side_by_side import SideBySide

#: (EWC mode, λ): plain SGD (λ 0), L2 toward the old weights (F = 1), EWC (the Fisher)
METHODS = [("separate", 0.0), ("l2", 0.5), ("separate", 300.0), ("online", 1000.0)]


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A learnable batch: the label is the brightest of 4 image quadrants (0-3)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 1, 28, 28, generator=g) * 0.3
    y = torch.randint(0, 4, (n,), generator=g)
    for i, c in enumerate(y.tolist()):
        r, s = divmod(c, 2)
        X[i, 0, 14 * r:14 * r + 14, 14 * s:14 * s + 14] += 0.6
    return X, y


def _after_task_a(cls: type[Learner], **arch: Any) -> tuple[Learner, dict]:
    """A learner trained a few steps on task A (optimiser state set) and its Fisher."""
    model = cls(num_classes=4, seed=1, ewc_lambda=0.0, **arch)
    X, y = _data(160, seed=0)
    torch.manual_seed(3)
    for Xb, yb in zip(X.split(32), y.split(32), strict=True):
        model.partial_fit(Xb, yb)
    return model, fisher_diagonal(model, X, y)


def _copies(model: Learner, fisher: dict, methods=METHODS) -> list[Learner]:
    copies = []
    for mode, lam in methods:
        c = copy.deepcopy(model)
        c.ewc.mode = mode
        c.ewc_lambda = lam
        c.ewc.add_task(fisher)
        copies.append(c)
    return copies


def _task_b(steps: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    X, y = _data(32 * steps, seed=9)
    y = (y + 1) % 4  # task B: the same images, other labels
    return list(zip(X.split(32), y.split(32), strict=True))


def _serial(copies: list[Learner], batches, seed: int) -> list[list[list[torch.Tensor]]]:
    """Each copy's own run (torch seeded alike before each): its weights after every step."""
    runs = []
    for m in copies:
        torch.manual_seed(seed)
        run = []
        for X, y in batches:
            m.partial_fit(X, y)
            run.append([p.detach().clone() for _, p in m.named_parameters()])
        runs.append(run)
    return runs


def _assert_matches_serial(cls: type[Learner], seed_side: int = 7, **arch: Any) -> None:
    model, fisher = _after_task_a(cls, **arch)
    copies = _copies(model, fisher)
    serial = _copies(model, fisher)
    batches = _task_b()
    runs = _serial(serial, batches, seed=7)
    side = SideBySide(copies)
    torch.manual_seed(seed_side)
    for step, (X, y) in enumerate(batches):
        side.partial_fit(X, y)
        for k in range(len(copies)):
            for (name, stacked), ref in zip(side.theta.items(), runs[k][step], strict=True):
                torch.testing.assert_close(stacked[k].detach(), ref, rtol=1e-5, atol=1e-6,
                                           msg=f"copy {k}, step {step}, {name}")
    # the copies really differ, so equality above is not trivially one shared run
    first = side.theta[next(iter(side.theta))]
    assert not torch.allclose(first[0], first[-1])
    # write_back gives each learner its own run's weights and momentum
    side.write_back()
    for mine, ref in zip(copies, serial, strict=True):
        for (name, p), q in zip(mine.named_parameters(), ref.parameters(), strict=True):
            torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(mine.optimizer.state[p]["momentum_buffer"],
                                       ref.optimizer.state[q]["momentum_buffer"],
                                       rtol=1e-5, atol=1e-6, msg=name)
        # and the learner trains on from there like its serial twin
        X, y = batches[0]
        torch.manual_seed(11)
        a = mine.partial_fit(X, y)
        torch.manual_seed(11)
        assert a == pytest.approx(ref.partial_fit(X, y), rel=1e-5)


def test_mlp_copies_equal_their_serial_runs_step_by_step():
    _assert_matches_serial(MLP, hidden=(32, 32))


def test_testnet_copies_share_the_dropout_masks_of_their_serial_runs():
    _assert_matches_serial(TestNet)


def test_testnet_with_other_dropout_masks_does_not_match():
    """The control: started from another global generator state, the masks differ and so
    do the weights (the test above can fail)."""
    with pytest.raises(AssertionError):
        _assert_matches_serial(TestNet, seed_side=8)


def test_global_generator_advances_as_in_one_serial_run():
    model, fisher = _after_task_a(TestNet)
    batches = _task_b(3)
    one = _copies(model, fisher)[2]
    torch.manual_seed(5)
    for X, y in batches:
        one.partial_fit(X, y)
    after_serial = torch.random.get_rng_state()
    side = SideBySide(_copies(model, fisher))
    torch.manual_seed(5)
    for X, y in batches:
        side.partial_fit(X, y)
    assert torch.equal(torch.random.get_rng_state(), after_serial)


def test_penalty_and_losses_are_each_copys_own():
    model, fisher = _after_task_a(MLP, hidden=(16,))
    copies = _copies(model, fisher)
    # move the copies off their anchors differently, so every penalty is non-zero
    for k, c in enumerate(copies):
        with torch.no_grad():
            for p in c.parameters():
                p.add_(0.01 * (k + 1))
    side = SideBySide(copies)
    expected = torch.stack([c.ewc.penalty() for c in copies])
    torch.testing.assert_close(side.penalty().detach(), expected, rtol=1e-5, atol=1e-7)
    assert expected[0] == 0 and (expected[1:] > 0).all()
    # its gradient is λ F (θ − θ*), by hand
    side.penalty().sum().backward()
    name = "net.1.weight"
    for k, (_, lam) in enumerate(METHODS):
        term = copies[k].ewc.terms[0]
        theta = dict(copies[k].named_parameters())[name].detach()
        hand = lam * term.importance[name] * (theta - term.anchor[name])
        torch.testing.assert_close(side.theta[name].grad[k], hand, rtol=1e-5, atol=1e-8)
    # the fast path a step uses gives the same value and writes the same gradient
    reference = {n: t.grad.clone() for n, t in side.theta.items()}
    with torch.no_grad():
        fast = side._penalty_into_grads()
    torch.testing.assert_close(fast, expected, rtol=1e-5, atol=1e-7)
    for n, t in side.theta.items():
        torch.testing.assert_close(t.grad, reference[n], rtol=1e-5, atol=1e-8)
    X, y = _task_b(1)[0]
    losses = side.partial_fit(X, y)
    serial = [copy.deepcopy(c).partial_fit(X, y) for c in copies]
    np.testing.assert_allclose(losses, serial, rtol=1e-5)


def test_copies_with_different_numbers_of_terms_and_online_mode():
    model, fisher = _after_task_a(MLP, hidden=(16,))
    two = _copies(model, fisher, [("separate", 100.0)])[0]
    two.ewc.add_task({k: 2 * v for k, v in fisher.items()})  # a second term
    online = _copies(model, fisher, [("online", 100.0)])[0]
    online.ewc.add_task(fisher)  # folded into one term
    none = copy.deepcopy(model)  # no term at all
    copies = [two, online, none]
    serial = [copy.deepcopy(c) for c in copies]
    batches = _task_b(4)
    runs = _serial(serial, batches, seed=0)
    side = SideBySide(copies)
    for X, y in batches:
        side.partial_fit(X, y)
    for k in range(3):
        for stacked, ref in zip(side.theta.values(), runs[k][-1], strict=True):
            torch.testing.assert_close(stacked[k].detach(), ref, rtol=1e-5, atol=1e-6)


def test_adam_copies_equal_their_serial_runs():
    model = MLP(num_classes=4, hidden=(16,), seed=2, optimizer="adam", ewc_lambda=0.0)
    X, y = _data(64, seed=0)
    model.partial_fit(X, y)  # Adam's moments and step count exist
    fisher = fisher_diagonal(model, X, y)
    copies = _copies(model, fisher)
    serial = _copies(model, fisher)
    batches = _task_b(4)
    runs = _serial(serial, batches, seed=0)
    side = SideBySide(copies)
    for X, y in batches:
        side.partial_fit(X, y)
    for k in range(len(copies)):
        for stacked, ref in zip(side.theta.values(), runs[k][-1], strict=True):
            torch.testing.assert_close(stacked[k].detach(), ref, rtol=1e-5, atol=1e-6)


def test_accuracy_matrix_equals_the_serial_runs_within_half_a_point():
    """Two real tasks (bundled MNIST then Fashion-MNIST): the accuracy on both after B."""
    a, b = get_scenario("mnist->fashion")
    model = MLP(hidden=(64, 64), seed=0, ewc_lambda=0.0)
    torch.manual_seed(0)
    for i in range(40):
        model.partial_fit(a.x_train[i * 64:(i + 1) * 64, None], a.y_train[i * 64:(i + 1) * 64])
    fisher = fisher_diagonal(model, a.x_train[:500, None], a.y_train[:500])
    methods = [("separate", 0.0), ("l2", 0.1), ("separate", 100.0), ("separate", 1000.0)]
    copies, serial = _copies(model, fisher, methods), _copies(model, fisher, methods)
    batches = [(b.x_train[i * 64:(i + 1) * 64, None], b.y_train[i * 64:(i + 1) * 64])
               for i in range(40)]
    _serial(serial, batches, seed=0)
    side = SideBySide(copies)
    for X, y in batches:
        side.partial_fit(X, y)
    for task in (a, b):
        got = side.score(task.x_test[:, None], task.y_test)
        want = [m.score(task.x_test[:, None], task.y_test) for m in serial]
        np.testing.assert_allclose(100 * got, 100 * np.array(want), atol=0.5)
    # the λ really trade task A against task B
    kept = side.score(a.x_test[:, None], a.y_test)
    assert kept[-1] > kept[0] + 0.05


# -- refusals: nothing changes ---------------------------------------------------------------
def _state(side: SideBySide) -> list[torch.Tensor]:
    momentum = [s["momentum_buffer"] for s in side.optimizer.state.values()]
    return [t.detach().clone() for t in [*side.theta.values(), *momentum]]


def test_bad_input_is_refused_and_nothing_changes():
    model, fisher = _after_task_a(TestNet)
    side = SideBySide(_copies(model, fisher))
    before, rng = _state(side), torch.random.get_rng_state()
    X, y = _task_b(1)[0]
    with pytest.raises(ValueError, match="labels"):
        side.partial_fit(X, y + 10)
    with pytest.raises(ValueError, match="required"):
        side.partial_fit(X, None)
    with pytest.raises(ValueError):
        side.partial_fit(X[:, :, :5], y)
    for a, b in zip(before, _state(side), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(rng, torch.random.get_rng_state())


def test_a_diverging_copy_is_named_and_no_copy_changes():
    model, fisher = _after_task_a(TestNet)
    copies = _copies(model, fisher)
    with torch.no_grad():  # copy 2's weights are huge: its loss is not finite
        for p in copies[2].parameters():
            p.mul_(1e30)
    side = SideBySide(copies)
    before, rng = _state(side), torch.random.get_rng_state()
    X, y = _task_b(1)[0]
    with pytest.raises(DivergenceError, match=r"copy 2 \(λ = 300\).*no copy changed"):
        side.partial_fit(X, y)
    for a, b in zip(before, _state(side), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(rng, torch.random.get_rng_state())


def test_a_lambda_past_the_stability_bound_is_refused_before_training():
    model, fisher = _after_task_a(MLP, hidden=(16,))
    limit = model.stability_limit() / max(float(f.max()) for f in fisher.values())
    copies = _copies(model, fisher, [("separate", 0.0), ("separate", 2 * limit)])
    with pytest.raises(DivergenceError, match=r"copy 1 \(λ = "):
        SideBySide(copies)


@pytest.mark.parametrize("other, what", [
    (lambda: MLP(num_classes=4, hidden=(8,)), "architecture"),
    (lambda: TestNet(num_classes=4), "class"),
    (lambda: MLP(num_classes=4, hidden=(16,), lr=0.1), "optimiser settings"),
    (lambda: MLP(num_classes=4, hidden=(16,), optimizer="adam"), "optimiser Adam"),
])
def test_copies_must_be_one_network_with_one_optimiser(other, what):
    with pytest.raises(ValueError, match=f"learners\\[1\\] must be .* got {what}"):
        SideBySide([MLP(num_classes=4, hidden=(16,)), other()])


def test_learners_must_be_a_non_empty_sequence_of_learners():
    model = MLP(num_classes=4, hidden=(16,))
    for bad in (model, [], [model, "mlp"], None):
        with pytest.raises(TypeError, match="learners must be"):
            SideBySide(bad)
