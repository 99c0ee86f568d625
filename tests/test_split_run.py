"""Split MNIST's three scenarios and the methods SI, MAS and replay on the run path:
``run_sequence``, its steps and ``ewclab demo --tasks split --scenario S --method M``.

Runs train a fraction of an epoch (:data:`FAST`) and evaluate only when a task ends, so
the whole file takes about a minute on one core; the defaults at full length are
``tests/test_every_choice.py``'s and ``benchmarks/bench_split.py``'s.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

import ewclab.methods
from ewclab import experiment, steps
from ewclab.cache import TaskACache
from ewclab.cli import main
from ewclab.experiment import run_sequence, sweep
from ewclab.heads import MultiHead
from ewclab.history import History
from ewclab.importance import mas_importance
from ewclab.methods import TaskRun
from ewclab.models import MLP
from ewclab.plan import plan
from ewclab.settings import METHODS, defaults, offered
from ewclab.training import evaluate, steps_for

SCENARIOS = ("task", "domain", "class")
#: A fraction of an epoch per task, no evaluation inside a task.
FAST = dict(epochs=0.25, eval_every=10**6)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_method_runs_through_the_cli_at_its_defaults(scenario, tmp_path, capsys,
                                                           monkeypatch):
    """``ewclab demo --tasks split --scenario S --method M`` plans every method at the
    table's defaults (λ, lr, 5 epochs, replay buffer) and runs that plan, here on its first
    two tasks to keep the test short (all five at the same defaults, with each scenario's
    lesson: tests/test_every_choice.py); --json keeps its keys."""
    plans = []
    run_plan = experiment.run_plan

    def first_two(p, *args, **kwargs):
        plans.append(p)
        return run_plan(dataclasses.replace(p, tasks=p.tasks[:2], epochs=p.epochs[:2]),
                        *args, **kwargs)

    monkeypatch.setattr(experiment, "run_plan", first_two)
    assert offered(f"split:{scenario}", "mlp") == tuple(METHODS)
    cache = TaskACache()
    for method in METHODS:
        out = tmp_path / f"{method}.json"
        argv = ["demo", "--tasks", "split", "--scenario", scenario, "--method", method,
                "--quiet", "--json", str(out)]
        assert main(argv, cache=cache) == 0, capsys.readouterr().err
        row, p = defaults(f"split:{scenario}", "mlp", method), plans[-1]
        assert (p.method, p.lam, p.lr, p.epochs) == (method, row.lam, row.lr, (row.epochs,) * 5)
        assert p.multi_head == (scenario == "task") and len(p.tasks) == 5
        d = json.loads(out.read_text())
        assert {"accuracy_matrix", "average_accuracy", "settings"} <= set(d)
        R = np.array(d["accuracy_matrix"])
        assert R.shape == (2, 2) and np.isfinite(R).all()
        s = d["settings"]
        assert s["scenario"] == f"split:{scenario}" and s["lam"] == row.lam
        assert s["replay_samples"] == (row.replay_samples if method == "replay" else None)
        chance = 0.1 if scenario == "class" else 0.5
        assert R[-1, -1] >= chance + 0.3, f"{method} did not learn the last task: {R}"


def test_cli_refuses_what_it_does_not_offer(capsys):
    for argv in (["--method", "si"],  # mnist->fashion: no measured SI row
                 ["--scenario", "task"],  # --scenario needs split
                 ["--tasks", "split", "--scenario", "task", "--model", "testnet", "--ewc"],
                 ["--tasks", "split", "--method", "replay", "--lambda", "5"]):
        with pytest.raises(SystemExit) as exit_:
            main(["demo", "--quiet", *argv])
        assert exit_.value.code == 2, argv
        assert "error" in capsys.readouterr().err


def test_the_scenarios_build_their_heads():
    task, domain, klass = (plan(f"split:{s}", method="ewc") for s in SCENARIOS)
    assert task.multi_head and not domain.multi_head and not klass.multi_head
    multi = task.learner()
    assert isinstance(multi, MultiHead) and multi.heads == 5 and multi.classes_per_head == 2
    assert multi.config["base_arch"]["hidden"] == (400, 400)
    assert isinstance(domain.learner(), MLP) and domain.learner().spec.num_classes == 2
    assert klass.learner().spec.num_classes == 10
    with pytest.raises(ValueError, match="one head per task"):
        sweep([1.0, 10.0], "split:task", epochs=0.1)


def test_task_il_routes_training_importance_and_evaluation(monkeypatch):
    """Every partial_fit of task k runs on head k (replayed samples on their own tasks'
    heads), the importance is measured on head k, and each task is scored on its head."""
    fits, scores, mas_heads, mixed = [], [], [], []
    fit, score, use_heads = MultiHead.partial_fit, MultiHead.score, MultiHead.use_heads

    def spy_fit(self, X, y):
        fits.append(self.task)
        return fit(self, X, y)

    def spy_score(self, X, y, batch_size=256):
        scores.append(self.task)
        return score(self, X, y, batch_size)

    def spy_use_heads(self, heads):
        mixed.append((self.task, list(heads)))
        return use_heads(self, heads)

    def spy_mas(model, X, batch_size=None):
        mas_heads.append(model.task)
        return mas_importance(model, X, batch_size)

    monkeypatch.setattr(MultiHead, "partial_fit", spy_fit)
    monkeypatch.setattr(MultiHead, "score", spy_score)
    monkeypatch.setattr(MultiHead, "use_heads", spy_use_heads)
    monkeypatch.setattr(ewclab.methods, "mas_importance", spy_mas)
    p = plan("split:task", method="mas", **FAST)
    per_task = [steps_for(t, e, p.batch_size) for t, e in zip(p.tasks, p.epochs, strict=True)]
    run_sequence("split:task", method="mas", **FAST)
    assert fits == [k for k, n in enumerate(per_task) for _ in range(n)]
    assert mas_heads == [0, 1, 2, 3, 4]
    # the initial evaluation, then one after each task: every task on its own head
    assert scores == list(range(5)) * 6

    fits.clear()
    run_sequence("split:task", method="replay", **FAST)
    assert fits[: per_task[0]] == [0] * per_task[0] and not any(k == 0 for k, _ in mixed)
    for k, heads in mixed:
        n = len(heads) // 2  # the task's batch, then as many replayed samples
        assert heads[:n] == [k] * n and set(heads[n:]) <= set(range(k)), (k, heads)
    assert {k for k, _ in mixed} == {1, 2, 3, 4}


def test_replay_draws_only_from_earlier_tasks_and_stores_only_the_task(monkeypatch):
    drawn, stored = [], []
    replay_batch = ewclab.methods.replay_batch

    def spy(buffer, current, n, generator):
        replay = replay_batch(buffer, current, n, generator)
        drawn.append((current, list(replay.tasks), replay.y.tolist(), list(buffer.tasks)))
        stored.append({t: set(buffer.get(t)[1].tolist()) for t in buffer.tasks})
        return replay

    monkeypatch.setattr(ewclab.methods, "replay_batch", spy)
    h = run_sequence("split:class", method="replay", **FAST)
    names = h.tasks
    assert {current for current, *_ in drawn} == set(names[1:])
    for current, tasks, labels, _ in drawn:
        earlier = names[: names.index(current)]
        assert tasks and set(tasks) <= set(earlier), (current, tasks)
        # class-IL labels say which task a sample came from: only earlier tasks' digits
        assert set(labels) <= set(range(2 * len(earlier))), (current, labels)
    for kept in stored:  # the buffer holds each task's own digits only, never replayed ones
        for t, labels in kept.items():
            k = names.index(t)
            assert labels <= {2 * k, 2 * k + 1}, (t, labels)
    assert len({t for _, tasks, _, _ in drawn for t in tasks}) == 4  # every old task replayed


@pytest.mark.parametrize("method", ["si", "mas"])
def test_si_and_mas_importances_reach_the_penalty(method):
    """The run path's steps anchor SI's / MAS's Ω (not the Fisher) at the end of a task, and
    the penalty is λ/2 Σ Ω (θ − θ*)² > 0 once the weights move on the next task."""
    p = plan("split:domain", method=method, lam=2.0, **FAST)
    learner, history = p.learner(), History(p.names, p.settings())
    run = TaskRun(p, 0, learner)
    result = steps.train_task(p, 0, learner, history, steps.At(0, 0, math.nan), None, None, run)
    assert learner.ewc.terms == []
    X, _ = learner.buffer.get(p.names[0])
    expected = run.tracker.importance() if method == "si" else mas_importance(learner, X)
    steps.consolidate_task(p, 0, learner, history, run)
    assert len(learner.ewc.terms) == 1 and learner.ewc.mode == "online"
    term = learner.ewc.terms[0]
    for name, omega in expected.items():
        torch.testing.assert_close(term.importance[name], omega)
        torch.testing.assert_close(history.importance[p.names[0]][name], omega)
    assert any(not torch.equal(term.importance[n], history.fisher[p.names[0]][n]) for n in expected)
    assert sum(float(o.sum()) for o in expected.values()) > 0
    steps.train_task(p, 1, learner, history, steps.At(1, result.step, result.loss), None, None)
    by_hand = sum(float((expected[n] * (q.detach() - term.anchor[n]) ** 2).sum())
                  for n, q in learner.named_parameters())
    penalty = float(learner.ewc.penalty().detach())
    assert penalty > 0
    assert penalty == pytest.approx(2.0 / 2 * by_hand, rel=1e-4)


def test_the_cache_never_mixes_scenarios_or_importances():
    cache = TaskACache()
    a = run_sequence("split:task", method="sgd", cache=cache, **FAST)
    b = run_sequence("split:domain", method="sgd", cache=cache, **FAST)
    assert (cache.hits, cache.misses) == (0, 2)  # same names and data, other heads
    run_sequence("split:domain", method="si", cache=cache, **FAST)
    assert cache.hits == 0  # SI tracks its path integral while task A trains
    e = run_sequence("split:domain", method="ewc", lam=100.0, cache=cache, **FAST)
    assert cache.hits == 1  # plain SGD's task A serves EWC
    assert e.accuracy_matrix[0, 0] == b.accuracy_matrix[0, 0]
    assert a.settings["scenario"] == "split:task" and b.settings["scenario"] == "split:domain"


def test_the_playground_offers_only_measured_methods():
    """The playground's EWC toggle offers sgd and ewc; both have measured rows for every
    task pair and model it offers (the new methods are the CLI's)."""
    from ewclab.widgets_options import METHOD_CHOICES, MODEL_CHOICES, TASK_PAIRS

    for pair in TASK_PAIRS:
        for model in MODEL_CHOICES:
            assert set(METHOD_CHOICES) <= set(offered(pair, model)), (pair, model)


def test_the_caller_can_keep_the_trained_learner():
    """run_sequence(..., learner=plan(...).learner()) trains that learner (lesson 07 reads
    its confusion matrix); with a cache as well it is refused before training."""
    p = plan("split:task", method="si", **FAST)
    learner = p.learner()
    h = run_sequence("split:task", method="si", learner=learner, **FAST)
    final = evaluate(learner, p.tasks)
    assert [final[t] for t in h.tasks] == pytest.approx(list(h.accuracy_matrix[-1]))
    assert len(learner.ewc.terms) == 1 and learner.ewc.mode == "online"  # SI's running Ω
    fresh = p.learner()
    before = [q.detach().clone() for q in fresh.parameters()]
    with pytest.raises(ValueError, match="learner or a cache"):
        run_sequence("split:task", method="si", learner=fresh, cache=TaskACache(), **FAST)
    with pytest.raises(ValueError, match="one head per task"):
        run_sequence("split:task", method="si", learner=MLP(2, seed=0), **FAST)
    assert all(torch.equal(a, q) for a, q in zip(before, fresh.parameters(), strict=True))


def test_sequences_the_table_does_not_know_keep_the_classic_methods():
    """A sequence without rows (three tasks, split Fashion-MNIST) is offered plain SGD,
    EWC, online EWC and L2 at the fallback λ, as before; SI, MAS and replay need rows."""
    for spec in ("mnist->fashion->mnist", "split-fashion:class"):
        assert offered(spec, "mlp") == ("sgd", "ewc", "online-ewc", "l2")
    assert offered("split:class", "testnet") == ()


def test_si_refuses_an_importance_it_did_not_track():
    """SI's Ω comes from the steps of the task: without them it would be 0 (a penalty
    silently without effect), so consolidating without the TaskRun that trained, or
    before any step, is refused and nothing is anchored."""
    p = plan("split:domain", method="si", **FAST)
    learner, history = p.learner(), History(p.names, p.settings())
    run = TaskRun(p, 0, learner)
    task = p.tasks[0]
    learner.buffer.add(task.name, task.x_train[:64, None], task.y_train[:64])
    with pytest.raises(ValueError, match="tracked no training step"):
        steps.consolidate_task(p, 0, learner, history, run)
    with pytest.raises(ValueError, match="pass the TaskRun"):
        steps.consolidate_task(p, 0, learner, history)
    assert learner.ewc.terms == [] and history.fisher == {} and history.importance == {}
