"""train_on_task, run_sequence, the task-A cache and the ready scenarios, on tiny tasks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ewclab.buffer import TaskBuffer
from ewclab.data import Task, batchify, load_task
from ewclab.experiment import (
    DEFAULTS,
    TaskACache,
    evaluate,
    make_model,
    run_sequence,
    steps_for,
    train_on_task,
)
from ewclab.history import History
from ewclab.models import MLP
from ewclab.scenarios import get_scenario
from ewclab.settings import defaults

SMALL = dict(model="mlp", width=16, batch_size=32, fisher_samples=64, eval_every=2)


def _small(task: Task, n_train: int = 128, n_test: int = 64) -> Task:
    return Task(task.name, task.classes, task.x_train[:n_train], task.y_train[:n_train],
                task.x_test[:n_test], task.y_test[:n_test])


@pytest.fixture(scope="module")
def tasks() -> list[Task]:
    return [_small(t) for t in get_scenario("mnist->fashion")]


@pytest.fixture(scope="module")
def three(tasks) -> list[Task]:
    return [_small(t) for t in get_scenario("permuted:3")]


def _model(seed: int = 0):
    return make_model("mlp", width=16, seed=seed)


def test_train_on_task_counts_steps_points_and_fills_buffer(tasks):
    model, buffer, points = _model(), TaskBuffer(per_task=50), []
    result = train_on_task(
        model, "mnist", tasks[0], epochs=2, buffer=buffer, eval_tasks=tasks, eval_every=3,
        callback=points.append, batch_size=32, seed=0,
    )
    assert result.steps == steps_for(tasks[0], 2, 32) == 8
    assert result.step == 8 and not result.stopped and np.isfinite(result.loss)
    assert [p.step for p in points] == [3, 6, 8]  # every 3 steps and after the last
    assert points == result.points
    assert set(points[-1].accuracies) == {"mnist", "fashion-mnist"}
    X, y = buffer.get("mnist")
    assert len(X) == len(y) == 50
    # offered as the stream passed, during the first pass only: each sample once
    assert buffer.state_dict()["tasks"]["mnist"]["seen"] == len(tasks[0].y_train) == 128


def test_train_on_task_with_batchify_iterator_like_the_seed(tasks):
    model = _model()
    batches = batchify(tasks[0].x_train[:, None], tasks[0].y_train, batch_size=16)
    result = train_on_task(model, "MNIST", batches, steps=5)
    assert result.steps == 5 and result.points == []


def test_training_improves_accuracy(tasks):
    model = _model()
    before = evaluate(model, tasks[:1])["mnist"]
    train_on_task(model, "mnist", tasks[0], epochs=5, batch_size=16, seed=0)
    assert evaluate(model, tasks[:1])["mnist"] > before + 0.2


def test_stop_leaves_model_between_steps(tasks):
    model, polls = _model(), []

    def stop() -> bool:
        polls.append(1)
        return len(polls) > 3

    history = History(["mnist", "fashion-mnist"])
    history.start_task("mnist", 0)
    result = train_on_task(model, "mnist", tasks[0], epochs=10, eval_tasks=tasks,
                           eval_every=100, stop=stop, history=history)
    assert result.stopped and result.steps == 3
    assert history.steps == [3]  # one final point where it stopped
    assert all(torch.isfinite(p).all() for p in model.parameters())
    model.partial_fit(tasks[0].x_train[:8, None], tasks[0].y_train[:8])  # still usable


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(steps=3, epochs=1), ValueError),
        (dict(steps=0), ValueError),
        (dict(steps=2.5), TypeError),
        (dict(epochs=-1), ValueError),
        (dict(epochs=1, eval_every=0), ValueError),
    ],
)
def test_train_on_task_rejects_bad_arguments(tasks, kwargs, error):
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(error):
        train_on_task(model, "mnist", tasks[0], **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_epochs_need_a_task(tasks):
    batches = batchify(tasks[0].x_train[:, None], tasks[0].y_train, batch_size=16)
    with pytest.raises(TypeError, match="epochs needs"):
        train_on_task(_model(), "mnist", batches, epochs=1)
    with pytest.raises(ValueError, match="steps or epochs"):
        train_on_task(_model(), "mnist", batches)


def test_run_sequence_history(tasks):
    points = []
    h = run_sequence(tasks, method="ewc", lam=10.0, epochs=[2, 1], callback=points.append,
                     **SMALL)
    assert h.tasks == ["mnist", "fashion-mnist"]
    assert h.boundaries == [0, 8]
    assert h.steps[0] == 0 and h.steps[-1] == 12
    R = h.accuracy_matrix
    assert R.shape == (2, 2) and np.isfinite(R).all() and ((R >= 0) & (R <= 1)).all()
    assert R[0, 0] == h.accuracy["mnist"][h.steps.index(8)]
    assert set(h.fisher) == {"mnist", "fashion-mnist"}
    model = _model()
    assert {k: v.shape for k, v in h.fisher["mnist"].items()} == {
        k: p.shape for k, p in model.named_parameters()
    }
    assert h.settings["method"] == "ewc" and h.settings["lam"] == 10.0
    assert h.settings["epochs"] == [2, 1]
    assert points[-1].history is h and points[-1].step == 12


def test_run_sequence_is_deterministic_and_seed_matters(tasks):
    a = run_sequence(tasks, method="ewc", lam=5.0, epochs=1, seed=3, **SMALL)
    b = run_sequence(tasks, method="ewc", lam=5.0, epochs=1, seed=3, **SMALL)
    c = run_sequence(tasks, method="ewc", lam=5.0, epochs=1, seed=4, **SMALL)
    assert a.to_dict() == b.to_dict()
    assert a.to_dict()["accuracy"] != c.to_dict()["accuracy"]


@pytest.mark.parametrize(
    "method, mode, terms", [("sgd", None, 0), ("ewc", "separate", 3), ("l2", "l2", 3),
                            ("online-ewc", "online", 1)]
)
def test_methods_consolidate_after_each_task(three, method, mode, terms):
    built = []

    def factory():
        built.append(make_model("mlp", width=8, seed=0))
        return built[-1]

    h = run_sequence(three, model=factory, method=method, lam=1.0, epochs=0.25,
                     batch_size=32, fisher_samples=32)
    model = built[0]
    assert len(model.ewc.terms) == terms
    assert model.ewc_lambda == (0.0 if method == "sgd" else 1.0)
    if mode is not None:
        assert model.ewc.mode == mode
    assert np.isfinite(h.accuracy_matrix).all()


class _Spy(MLP):
    """An MLP that counts the learner API calls a run makes."""

    calls: list[str]

    def partial_fit(self, X, y):
        self.calls.append("partial_fit")
        return super().partial_fit(X, y)

    def consolidate(self, X, y=None, fisher=None):
        self.calls.append(f"consolidate {len(y)}")
        return super().consolidate(X, y, fisher)


def test_run_sequence_runs_the_learner_api(tasks):
    """Steps through partial_fit, samples kept in learner.buffer as the batches pass (one
    pass: each training sample offered once), then learner.consolidate on them."""
    built = []

    def factory():
        built.append(_Spy(10, hidden=(8, 8), seed=0))
        built[-1].calls = []
        return built[-1]

    run_sequence(tasks, model=factory, method="ewc", lam=1.0, epochs=2, batch_size=32,
                 fisher_samples=40)
    model = built[0]
    steps = steps_for(tasks[0], 2, 32)
    assert model.calls == (["partial_fit"] * steps + ["consolidate 40"]) * 2
    assert model.buffer.tasks == ["mnist", "fashion-mnist"]
    state = model.buffer.state_dict()["tasks"]
    assert [state[t.name]["seen"] for t in tasks] == [len(t.y_train) for t in tasks]
    assert len(model.ewc.terms) == 2


def test_run_sequence_leaves_the_global_rng_alone(tasks):
    """Dropout's seeding happens inside a fork of torch's generator: the caller's state is
    unchanged, and the run is still reproducible (TestNet has dropout)."""
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = run_sequence(tasks, model="testnet", method="ewc", lam=1.0, epochs=0.5, batch_size=32,
                     fisher_samples=32, seed=5)
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.manual_seed(999)  # another global state: the run must not depend on it
    b = run_sequence(tasks, model="testnet", method="ewc", lam=1.0, epochs=0.5, batch_size=32,
                     fisher_samples=32, seed=5)
    assert a.to_dict() == b.to_dict()


def test_ewc_keeps_weights_closer_than_sgd(tasks):
    """Task B moves the weights that matter for task A less with the EWC penalty."""
    final, fisher = {}, {}
    for method in ("sgd", "ewc"):
        built = []
        h = run_sequence(tasks, model=lambda built=built: built.append(_model()) or built[-1],
                         method=method, lam=1000.0, epochs=2, batch_size=32, fisher_samples=64)
        final[method] = {k: p.detach() for k, p in built[0].named_parameters()}
        fisher[method] = h.fisher["mnist"]
        if method == "ewc":
            anchor = built[0].ewc.terms[0].anchor  # the task-A weights, the same in both runs
    assert all(torch.equal(fisher["sgd"][k], fisher["ewc"][k]) for k in anchor)
    F = fisher["ewc"]
    dist = {m: sum(float((F[k] * (w[k] - anchor[k]) ** 2).sum()) for k in F)
            for m, w in final.items()}
    assert dist["ewc"] < 0.5 * dist["sgd"]


def test_stop_in_run_sequence_leaves_nan_rows(tasks):
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 10  # task A has 8 steps: stop 2 steps into task B

    h = run_sequence(tasks, epochs=2, stop=stop, **SMALL)
    assert h.boundaries == [0, 8] and h.steps[-1] == 10
    assert np.isfinite(h.accuracy_matrix[0]).all() and np.isnan(h.accuracy_matrix[1]).all()


def test_cache_reuses_task_a_and_matches_a_full_run(tasks):
    cache = TaskACache()
    first = run_sequence(tasks, method="sgd", epochs=[2, 1], cache=cache, **SMALL)
    assert (cache.hits, cache.misses, len(cache)) == (0, 1, 1)
    cached = run_sequence(tasks, method="ewc", lam=50.0, epochs=[2, 3], cache=cache, **SMALL)
    assert cache.hits == 1
    full = run_sequence(tasks, method="ewc", lam=50.0, epochs=[2, 3], **SMALL)
    assert cached.to_dict() == full.to_dict()
    assert all(torch.equal(cached.fisher[t][k], full.fisher[t][k])
               for t in full.fisher for k in full.fisher[t])
    np.testing.assert_array_equal(first.accuracy_matrix[0], full.accuracy_matrix[0])


def test_cache_misses_when_task_a_settings_change(tasks):
    cache = TaskACache()
    run_sequence(tasks, epochs=1, cache=cache, **SMALL)
    run_sequence(tasks, epochs=1, cache=cache, seed=1, **SMALL)
    run_sequence(tasks, epochs=[2, 1], cache=cache, **SMALL)
    other = [tasks[1], tasks[0]]
    run_sequence(other, epochs=1, cache=cache, **SMALL)
    assert cache.hits == 0 and cache.misses == 4


def test_cache_entries_are_not_changed_by_reuse(tasks):
    cache = TaskACache()
    settings = dict(epochs=1, cache=cache, **SMALL)
    a = run_sequence(tasks, method="online-ewc", lam=100.0, gamma=0.5, **settings)
    b = run_sequence(tasks, method="online-ewc", lam=100.0, gamma=0.5, **settings)
    c = run_sequence(tasks, method="online-ewc", lam=100.0, gamma=0.5, **settings)
    assert cache.hits == 2
    assert a.to_dict() == b.to_dict() == c.to_dict()


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(method="dropout"), ValueError),
        (dict(lam=-1.0), ValueError),
        (dict(lam=float("nan")), ValueError),
        (dict(epochs=[1, 2, 3]), ValueError),
        (dict(epochs=0), ValueError),
        (dict(fisher_samples=0), ValueError),
        (dict(model="resnet"), ValueError),
        (dict(model="testnet", width=0), ValueError),
        (dict(seed=1.5), TypeError),
        (dict(seed=-1), ValueError),
    ],
)
def test_run_sequence_rejects_bad_arguments(tasks, kwargs, error):
    with pytest.raises(error):
        run_sequence(tasks, **kwargs)


def test_run_sequence_accepts_a_scenario_name():
    h = run_sequence("mnist->fashion", epochs=0.02, model="mlp", width=8, batch_size=64,
                     fisher_samples=32)
    assert h.tasks == ["mnist", "fashion-mnist"]


def test_make_model_builds_the_settings_row():
    """make_model() with no arguments is the demo's network: the settings table's width
    and lr (the committed lessons rely on λ 2000, lr 0.01, 5 epochs, two layers of 400)."""
    row = defaults(DEFAULTS["tasks"], "mlp", "ewc")
    assert (row.lam, row.lr, row.epochs, row.width) == (2000.0, 0.01, 5, 400)
    assert (DEFAULTS["lam"], DEFAULTS["lr"], DEFAULTS["epochs"]) == (row.lam, row.lr, row.epochs)
    model = make_model()
    assert model.config["hidden"] == (row.width, row.width)
    assert model.config["lr"] == row.lr and model.config["optimizer"] == row.optimizer


def test_run_sequence_defaults_follow_the_scenarios_row(tasks):
    """Without lam/lr/epochs, a run uses the row of its scenario (here fashion->mnist,
    found from the task names), not the demo's."""
    reverse = [tasks[1], tasks[0]]
    h = run_sequence(reverse, method="ewc", **SMALL)
    row = defaults("fashion->mnist", "mlp", "ewc")
    assert row.lam != DEFAULTS["lam"]
    assert h.settings["lam"] == row.lam and h.settings["lr"] == row.lr
    assert h.settings["epochs"] == [row.epochs, row.epochs]


def test_run_sequence_refuses_an_unstable_lambda_before_the_next_task(tasks):
    """λ past lr·λ·max F < 2(1 + momentum) is refused once task A's Fisher is known, and
    task B never takes a step."""
    points = []
    with pytest.raises(ValueError, match="before training task 'fashion-mnist'.*diverge"):
        run_sequence(tasks, method="ewc", lam=1e6, epochs=1, callback=points.append, **SMALL)
    assert points and {p.task for p in points} == {"mnist"}
    h = run_sequence(tasks, method="ewc", lam=1.0, epochs=1, **SMALL)  # a small λ runs
    assert np.isfinite(h.accuracy_matrix).all()


@pytest.mark.parametrize(
    "spec, names",
    [
        ("mnist->fashion", ["mnist", "fashion-mnist"]),
        ("fashion->mnist", ["fashion-mnist", "mnist"]),
        ("permuted:3", ["mnist-perm1", "mnist-perm2", "mnist-perm3"]),
        ("split", [f"mnist-split{a}{a + 1}" for a in range(0, 10, 2)]),
    ],
)
def test_scenarios(spec, names):
    tasks = get_scenario(spec)
    assert [t.name for t in tasks] == names
    if spec == "split":
        assert all(set(np.unique(t.y_train)) == {0, 1} for t in tasks)
    if spec.startswith("permuted"):
        mnist = load_task("mnist")
        assert all(np.array_equal(t.y_train, mnist.y_train) for t in tasks)
        assert not np.array_equal(tasks[0].x_train, tasks[1].x_train)


@pytest.mark.parametrize("spec", ["mnist->mnist", "cifar", "permuted:0", "permuted:x", ""])
def test_bad_scenarios(spec):
    with pytest.raises(ValueError, match="expected"):
        get_scenario(spec)
