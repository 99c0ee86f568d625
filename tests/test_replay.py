"""Replay draws only from the tasks stored before the current one, deterministically for
a seeded generator, and leaves the buffer and the global random state alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ewclab.buffer import TaskBuffer
from ewclab.replay import Replay, earlier_tasks, replay_batch, with_replay


def filled(per_task: int = 20) -> TaskBuffer:
    """Tasks a, b, c with 20, 20, 5 samples; every pixel of a sample is its task's number
    (1, 2, 3) and labels are 100·task + index, so each drawn sample names its origin."""
    buffer = TaskBuffer(per_task=per_task, seed=0)
    for k, (name, n) in enumerate((("a", 20), ("b", 20), ("c", 5)), start=1):
        X = np.full((n, 1, 2, 2), k, dtype=np.uint8)
        buffer.add(name, X, np.arange(n) + 100 * k)
    return buffer


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_earlier_tasks():
    buffer = filled()
    assert earlier_tasks(buffer, "a") == []
    assert earlier_tasks(buffer, "b") == ["a"]
    assert earlier_tasks(buffer, "c") == ["a", "b"]
    assert earlier_tasks(buffer, "d") == ["a", "b", "c"]  # not stored yet: all are earlier


@pytest.mark.parametrize("current, allowed", [("b", {1}), ("c", {1, 2}), ("d", {1, 2, 3})])
def test_draws_only_from_earlier_tasks(current, allowed):
    buffer = filled()
    g = gen(3)
    for _ in range(20):
        X, y, tasks = replay_batch(buffer, current, 8, g)
        origin = X.flatten(1)[:, 0].long()
        assert set(origin.tolist()) <= allowed
        assert torch.equal(y // 100, origin)  # labels travel with their samples
        assert tasks == [" abc"[k] for k in origin.tolist()]
        assert X.shape == (8, 1, 2, 2) and X.dtype == torch.uint8 and y.dtype == torch.int64
        assert len(set(y.tolist())) == 8  # without replacement


def test_every_earlier_task_is_drawn_in_proportion():
    buffer = filled()
    g = gen(0)
    counts = np.zeros(4)
    for _ in range(300):
        X, _, _ = replay_batch(buffer, "d", 9, g)
        counts += np.bincount(X.flatten(1)[:, 0].numpy(), minlength=4)
    share = counts[1:] / counts.sum()
    np.testing.assert_allclose(share, [20 / 45, 20 / 45, 5 / 45], atol=0.03)


def test_deterministic_for_a_seed_and_the_buffer_and_global_rng_stay():
    buffer = filled()
    state = buffer.state_dict()
    rng = torch.random.get_rng_state()
    a = [replay_batch(buffer, "c", 6, g) for g in [gen(7)] for _ in range(3)]
    b = [replay_batch(buffer, "c", 6, g) for g in [gen(7)] for _ in range(3)]
    for ra, rb in zip(a, b, strict=True):
        assert torch.equal(ra.X, rb.X) and torch.equal(ra.y, rb.y) and ra.tasks == rb.tasks
    assert not torch.equal(a[0].y, a[1].y)  # the generator moves on between steps
    assert not torch.equal(a[0].y, replay_batch(buffer, "c", 6, gen(8)).y)
    assert torch.equal(torch.random.get_rng_state(), rng)
    after = buffer.state_dict()
    assert torch.equal(after["rng"], state["rng"])
    for name, t in state["tasks"].items():
        assert torch.equal(after["tasks"][name]["X"], t["X"])
        assert torch.equal(after["tasks"][name]["y"], t["y"])


def test_a_batch_larger_than_the_pool_returns_the_pool_once():
    buffer = filled()
    X, y, tasks = replay_batch(buffer, "b", 100, gen())
    assert sorted(y.tolist()) == list(range(100, 120)) and set(tasks) == {"a"}


def test_refusals():
    buffer = filled()
    with pytest.raises(ValueError, match="no task was stored before 'a'"):
        replay_batch(buffer, "a", 4, gen())
    with pytest.raises(ValueError, match="batch_size"):
        replay_batch(buffer, "c", 0, gen())
    with pytest.raises(TypeError, match="batch_size"):
        replay_batch(buffer, "c", 2.0, gen())
    with pytest.raises(TypeError, match="generator"):
        replay_batch(buffer, "c", 4, 0)
    with pytest.raises(TypeError, match="current"):
        replay_batch(buffer, 2, 4, gen())
    with pytest.raises(TypeError, match="TaskBuffer"):
        earlier_tasks({"a": 1}, "b")


def test_with_replay_concatenates_the_current_batch_first():
    buffer = filled()
    X = np.zeros((3, 1, 2, 2), dtype=np.uint8)
    y = np.array([0, 1, 2])
    replay = replay_batch(buffer, "c", 4, gen())
    X_all, y_all = with_replay(X, y, replay)
    assert X_all.shape == (7, 1, 2, 2) and torch.equal(y_all[:3], torch.tensor([0, 1, 2]))
    assert torch.equal(X_all[3:], replay.X) and torch.equal(y_all[3:], replay.y)
    with pytest.raises(ValueError, match="replayed samples"):
        with_replay(X.astype(np.float32), y, replay)
    with pytest.raises(TypeError, match="replay"):
        with_replay(X, y, (replay.X, replay.y))
    assert isinstance(replay, Replay)
