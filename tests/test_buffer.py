"""TaskBuffer: reservoir sampling, class balance, capacity, errors, state round trip."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from ewclab.buffer import TaskBuffer


def _stream(buf: TaskBuffer, task: str, X: np.ndarray, y: np.ndarray, batch: int = 32) -> None:
    for i in range(0, len(X), batch):
        buf.add(task, X[i : i + batch], y[i : i + batch])


def test_reservoir_keeps_every_sample_with_equal_probability():
    # 300 buffers of 20 out of a stream of 200: each tenth of the stream should hold
    # a tenth of the kept samples. Chi-square with 9 dof; 27.9 is the 0.1% point.
    n, k, runs = 200, 20, 300
    X = np.arange(n).reshape(n, 1)
    y = np.zeros(n, dtype=np.int64)
    kept = Counter()
    for seed in range(runs):
        buf = TaskBuffer(per_task=k, balanced=False, seed=seed)
        _stream(buf, "t", X, y)
        kept.update((buf.get("t")[0][:, 0] // (n // 10)).tolist())
    expected = runs * k / 10
    chi2 = sum((kept[b] - expected) ** 2 / expected for b in range(10))
    assert chi2 < 27.9, kept


def test_balanced_mode_keeps_classes_balanced_on_a_skewed_stream():
    rng = np.random.default_rng(0)
    y = rng.choice(4, size=2000, p=[0.7, 0.2, 0.05, 0.05])
    X = np.arange(len(y)).reshape(-1, 1)
    buf = TaskBuffer(per_task=40, balanced=True, seed=1)
    _stream(buf, "skewed", X, y)
    counts = Counter(buf.get("skewed")[1].tolist())
    assert len(buf.get("skewed")[1]) == 40
    assert max(counts.values()) - min(counts.values()) <= 1, counts
    plain = TaskBuffer(per_task=40, balanced=False, seed=1)
    _stream(plain, "skewed", X, y)
    assert Counter(plain.get("skewed")[1].tolist())[0] > 20  # the plain reservoir is skewed


def test_balanced_samples_are_the_streamed_pairs():
    y = np.repeat(np.arange(5), 50)
    X = (y * 1000 + np.arange(len(y))).reshape(-1, 1)
    buf = TaskBuffer(per_task=25, seed=3)
    _stream(buf, "a", X, y)
    Xk, yk = buf.get("a")
    assert torch.equal(Xk[:, 0] // 1000, yk)


@pytest.mark.parametrize("balanced", [True, False])
def test_never_exceeds_per_task_and_tasks_are_separate(balanced):
    buf = TaskBuffer(per_task=7, balanced=balanced)
    assert buf.tasks == [] and len(buf) == 0
    for i in range(5):
        buf.add("a", np.full((3, 1, 2, 2), i, np.uint8), np.array([0, 1, 2]))
        assert len(buf.get("a")[0]) <= 7
    buf.add("b", np.zeros((2, 1, 2, 2), np.uint8), [4, 5])
    assert buf.tasks == ["a", "b"]
    assert len(buf.get("a")[1]) == 7 and buf.get("b")[1].tolist() == [4, 5]
    assert buf.get("a")[0].dtype == torch.uint8


def test_get_returns_copies():
    buf = TaskBuffer(per_task=3)
    buf.add("a", torch.zeros(2, 1), torch.tensor([0, 1]))
    X, _ = buf.get("a")
    X += 1
    assert buf.get("a")[0].sum() == 0


def test_unknown_task_raises_key_error_naming_it():
    buf = TaskBuffer()
    buf.add("mnist", np.zeros((1, 1, 2, 2), np.uint8), [0])
    with pytest.raises(KeyError, match="fashion.*mnist"):
        buf.get("fashion")


@pytest.mark.parametrize(
    "X, y, error",
    [
        (np.zeros((3, 1, 2, 2)), [0, 1], ValueError),
        (np.zeros((2, 1, 2, 2)), [0.5, 1.0], TypeError),
        ([[0.0]], [0], TypeError),
        (np.zeros((2, 1, 3, 3), np.uint8), [0, 1], ValueError),  # shape differs from stored
    ],
)
def test_bad_input_raises_and_changes_nothing(X, y, error):
    buf = TaskBuffer(per_task=4)
    buf.add("a", np.ones((2, 1, 2, 2), np.uint8), [0, 1])
    before = buf.state_dict()
    with pytest.raises(error):
        buf.add("a", X, y)
    _assert_same_state(buf.state_dict(), before)


@pytest.mark.parametrize(
    "per_task, error", [(0, ValueError), (-1, ValueError), (2.5, TypeError), (True, TypeError)]
)
def test_per_task_must_be_a_positive_int(per_task, error):
    with pytest.raises(error, match=r"per_task must be an int >= 1, got"):
        TaskBuffer(per_task=per_task)


def test_state_dict_round_trip_continues_identically():
    rng = np.random.default_rng(5)
    X, y = rng.integers(0, 255, (300, 1, 4, 4), dtype=np.uint8), rng.integers(0, 3, 300)
    a = TaskBuffer(per_task=10, seed=2)
    _stream(a, "t", X[:150], y[:150])
    b = TaskBuffer(per_task=99, balanced=False, seed=7)
    b.load_state_dict(a.state_dict())
    _stream(a, "t", X[150:], y[150:])
    _stream(b, "t", X[150:], y[150:])
    _assert_same_state(a.state_dict(), b.state_dict())


def test_load_state_dict_rejects_bad_state_and_keeps_its_own():
    buf = TaskBuffer(per_task=3)
    buf.add("a", np.zeros((2, 1)), [0, 1])
    before = buf.state_dict()
    bad = TaskBuffer(per_task=3).state_dict()
    bad["tasks"] = {"x": {"X": torch.zeros(5, 1), "y": torch.zeros(5, dtype=torch.long),
                          "seen": 5, "class_seen": {0: 5}}}
    for state in (bad, {"per_task": 3}):
        with pytest.raises(ValueError, match="TaskBuffer state"):
            buf.load_state_dict(state)
        _assert_same_state(buf.state_dict(), before)


def _assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        elif isinstance(a[key], dict):
            _assert_same_state(a[key], b[key])
        else:
            assert a[key] == b[key], key


def test_labels_are_checked_against_num_classes_when_given():
    X = np.zeros((4, 1, 2, 2), np.uint8)
    free, bounded = TaskBuffer(per_task=8), TaskBuffer(per_task=8, num_classes=3)
    free.add("a", X, [0, 1, 2, 7])
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\), got values from 0 to 7"):
        bounded.add("a", X, [0, 1, 2, 7])
    with pytest.raises(ValueError, match="labels must be >= 0, got values from -5 to 2"):
        free.add("a", X, [-5, 0, 1, 2])
    bounded.add("a", X, np.array([0, 1, 2, 2], np.uint16))
    assert bounded.get("a")[1].tolist() == [0, 1, 2, 2] and len(free) == 4


def test_a_state_without_num_classes_keeps_the_buffers_own():
    """Files written before num_classes existed still load, keeping the learner's bound."""
    old = TaskBuffer(per_task=8)
    old.add("a", np.zeros((2, 3)), [0, 1])
    state = old.state_dict()
    del state["num_classes"]
    buffer = TaskBuffer(per_task=4, num_classes=3)
    buffer.load_state_dict(state)
    assert buffer.num_classes == 3 and buffer.per_task == 8 and len(buffer) == 2
