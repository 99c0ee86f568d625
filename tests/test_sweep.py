"""experiment.sweep: one History per λ, each run_sequence's for that λ; task A once; stop,
callbacks, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ewclab.data import Task
from ewclab.experiment import TaskACache, run_sequence, sweep
from ewclab.scenarios import get_scenario
from ewclab.sweep_training import SweepPoint
from ewclab.training import Point

SMALL = dict(width=32, batch_size=32, fisher_samples=64, eval_every=3, epochs=2)


def _small(task: Task, n_train: int = 256, n_test: int = 200) -> Task:
    return Task(task.name, task.classes, task.x_train[:n_train], task.y_train[:n_train],
                task.x_test[:n_test], task.y_test[:n_test])


@pytest.fixture(scope="module")
def tasks() -> list[Task]:
    return [_small(t) for t in get_scenario("mnist->fashion")]


def _assert_same_run(swept, serial) -> None:
    """Same settings, curves and accuracy matrix (within 0.5 points), Fisher close."""
    assert swept.settings == serial.settings
    assert swept.steps == serial.steps and swept.boundaries == serial.boundaries
    np.testing.assert_allclose(100 * swept.accuracy_matrix, 100 * serial.accuracy_matrix,
                               atol=0.5)
    for name in swept.tasks:
        np.testing.assert_allclose(swept.accuracy[name], serial.accuracy[name], atol=0.005)
    assert swept.fisher.keys() == serial.fisher.keys()
    for task, fisher in serial.fisher.items():
        for n, f in fisher.items():
            torch.testing.assert_close(swept.fisher[task][n], f, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("method, lams", [("ewc", [0.0, 100.0, 1000.0]), ("l2", [0.01, 1.0])])
def test_each_lambda_equals_its_run_sequence(tasks, method, lams):
    cache = TaskACache()
    swept = sweep(lams, tasks, "mlp", method, cache=cache, **SMALL)
    assert len(swept) == len(lams)
    for lam, history in zip(lams, swept, strict=True):
        _assert_same_run(history, run_sequence(tasks, "mlp", method, lam, **SMALL))
    # the λ really differ (so equality is not one shared run): their Fishers of B differ
    fishers = [h.fisher["fashion-mnist"]["net.1.weight"] for h in swept]
    assert not torch.allclose(fishers[0], fishers[-1])


def test_testnet_with_dropout_equals_its_run_sequence(tasks):
    settings = dict(SMALL, width=0.5, epochs=1)
    swept = sweep([0.0, 300.0], tasks, "testnet", "ewc", **settings)
    for lam, history in zip([0.0, 300.0], swept, strict=True):
        _assert_same_run(history, run_sequence(tasks, "testnet", "ewc", lam, **settings))


def test_three_tasks_consolidate_every_copy_on_its_own(tasks):
    three = [_small(t, 128, 100) for t in get_scenario("permuted:3")]
    swept = sweep([10.0, 300.0], three, "mlp", "online-ewc", **SMALL)
    for lam, history in zip([10.0, 300.0], swept, strict=True):
        _assert_same_run(history, run_sequence(three, "mlp", "online-ewc", lam, **SMALL))


def test_task_a_is_trained_once_and_shared_through_the_cache(tasks):
    cache = TaskACache()
    sweep([1.0, 10.0], tasks, cache=cache, **SMALL)
    assert (cache.hits, cache.misses, len(cache)) == (0, 1, 1)
    run_sequence(tasks, lam=5.0, cache=cache, **SMALL)  # run_sequence reuses it too
    assert cache.hits == 1
    sweep([3.0], tasks, cache=cache, **SMALL)
    assert cache.hits == 2 and len(cache) == 1


def test_callbacks_see_task_a_once_then_every_lambda(tasks):
    points = []
    sweep([0.0, 100.0], tasks, callback=points.append, **SMALL)
    shared = [p for p in points if isinstance(p, Point)]
    swept = [p for p in points if isinstance(p, SweepPoint)]
    assert shared and swept and points.index(swept[0]) == len(shared)
    assert all(p.task == "mnist" for p in shared)
    assert all(p.task == "fashion-mnist" and len(p.accuracies) == 2 for p in swept)
    assert [p.step for p in swept] == sorted(p.step for p in swept)
    last = swept[-1]
    assert last.accuracies[1]["fashion-mnist"] == last.histories[1].accuracy["fashion-mnist"][-1]


def test_stop_ends_every_run_after_the_step_in_progress(tasks):
    cache = TaskACache()
    sweep([0.0], tasks, cache=cache, **SMALL)  # task A cached
    polls = []

    def stop() -> bool:
        polls.append(1)
        return len(polls) > 3

    swept = sweep([0.0, 100.0], tasks, cache=cache, stop=stop, **SMALL)
    for history in swept:
        assert np.isnan(history.accuracy_matrix[1]).all()
        assert history.steps[-1] == history.boundaries[1] + 3
    # stopped during task A: task A's points, nothing finished
    swept = sweep([0.0, 100.0], tasks, stop=lambda: True, **SMALL)
    assert all(np.isnan(h.accuracy_matrix).all() and h.boundaries == [0] for h in swept)


def test_the_callers_global_generator_is_left_alone(tasks):
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    sweep([0.0, 10.0], tasks, "testnet", width=0.5, epochs=1, batch_size=64,
          fisher_samples=32)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_a_lambda_past_the_stability_bound_is_named(tasks):
    with pytest.raises(ValueError, match=r"λ = 1e\+06: before training task 'fashion-mnist'"):
        sweep([1.0, 1e6], tasks, **SMALL)


@pytest.mark.parametrize("lams, error, match", [
    ([], TypeError, "lams must be a non-empty sequence"),
    ("1,2", TypeError, "lams must be a non-empty sequence"),
    (5.0, TypeError, "lams must be a non-empty sequence"),
    ([1.0, -1.0], ValueError, r"lams\[1\] must be"),
    ([float("nan")], ValueError, r"lams\[0\] must be"),
    ([1.0, "x"], TypeError, r"lams\[1\] must be"),
])
def test_bad_lambdas_are_refused_before_training(tasks, lams, error, match):
    cache = TaskACache()
    with pytest.raises(error, match=match):
        sweep(lams, tasks, cache=cache, **SMALL)
    assert len(cache) == 0 and cache.misses == 0


def test_methods_without_a_lambda_are_refused(tasks):
    with pytest.raises(ValueError, match="method must be one of"):
        sweep([1.0], tasks, method="sgd", **SMALL)
    with pytest.raises(TypeError, match="method must be one of"):
        sweep([1.0], tasks, method=None, **SMALL)
