"""Split MNIST / Fashion-MNIST in the task-, domain- and class-incremental scenarios:
names, shapes, labels, and every earlier scenario name still working."""

from __future__ import annotations

import numpy as np
import pytest

from ewclab.data import CLASSES, Task, load_task
from ewclab.scenarios import SCENARIOS, get_scenario
from ewclab.split import PAIRS, SplitTask, split_tasks


@pytest.fixture(scope="module")
def mnist() -> Task:
    return load_task("mnist")


@pytest.mark.parametrize("scenario", ["task", "domain", "class"])
@pytest.mark.parametrize("data", ["mnist", "fashion-mnist"])
def test_split_scenarios_shapes_and_labels(data, scenario):
    spec = ("split" if data == "mnist" else "split-fashion") + f":{scenario}"
    full = load_task(data)
    tasks = get_scenario(spec)
    assert [t.name for t in tasks] == [f"{data}-split{a}{a + 1}" for a in range(0, 10, 2)]
    assert [t.task_id for t in tasks] == [0, 1, 2, 3, 4]
    assert all(isinstance(t, SplitTask) and t.scenario == scenario for t in tasks)
    assert [t.original_labels for t in tasks] == list(PAIRS)
    for t, pair in zip(tasks, PAIRS, strict=True):
        for split in ("train", "test"):
            x, y = getattr(t, f"x_{split}"), getattr(t, f"y_{split}")
            y_full = getattr(full, f"y_{split}")
            mask = np.isin(y_full, pair)
            assert x.shape == (int(mask.sum()), 28, 28) and x.dtype == np.uint8
            assert np.array_equal(x, getattr(full, f"x_{split}")[mask])
            assert y.dtype == np.int64 and len(y) > 0
            if scenario == "class":  # the dataset's own labels, a 10-way head
                assert np.array_equal(y, y_full[mask])
            else:  # 0 for the pair's first class, 1 for its second
                assert np.array_equal(y, (y_full[mask] == pair[1]).astype(np.int64))
        if scenario == "class":
            assert t.classes == CLASSES[data] and t.num_classes == 10
        else:
            assert t.classes == [CLASSES[data][c] for c in pair] and t.num_classes == 2


def test_plain_split_is_the_domain_scenario_as_before(mnist):
    old = get_scenario("split")
    new = get_scenario("split:domain")
    assert [t.name for t in old] == [t.name for t in new]
    for a, b in zip(old, new, strict=True):
        assert a.scenario == "domain" and np.array_equal(a.y_train, b.y_train)
    assert [t.scenario for t in get_scenario("split-fashion")] == ["domain"] * 5


def test_every_named_scenario_loads():
    for spec in SCENARIOS:
        tasks = get_scenario(spec)
        assert tasks and len({t.name for t in tasks}) == len(tasks)
    for spec in ("mnist->fashion", "fashion->mnist", "permuted:2"):
        assert not any(isinstance(t, SplitTask) for t in get_scenario(spec))


@pytest.mark.parametrize("spec", ["split:", "split:joint", "split-fashion:classes",
                                  "split-mnist", "split:task:2"])
def test_bad_split_specs(spec):
    with pytest.raises(ValueError, match="expected"):
        get_scenario(spec)


def test_split_tasks_custom_pairs_and_refusals(mnist):
    tasks = split_tasks(mnist, "class", pairs=[(3, 5, 7), (0,)])
    assert [t.original_labels for t in tasks] == [(3, 5, 7), (0,)]
    assert set(np.unique(tasks[0].y_train)) == {3, 5, 7}
    with pytest.raises(ValueError, match="scenario"):
        split_tasks(mnist, "joint")
    with pytest.raises(TypeError, match="scenario"):
        split_tasks(mnist, 3)
    with pytest.raises(ValueError, match="share"):
        split_tasks(mnist, "task", pairs=[(0, 1), (1, 2)])
    for pairs in ([], [1, 2], "01", [(0, 1), "23"]):
        with pytest.raises(TypeError, match="pairs"):
            split_tasks(mnist, "task", pairs=pairs)
    with pytest.raises(ValueError, match="outside"):
        split_tasks(mnist, "task", pairs=[(0, 10)])


def test_split_task_checks_its_fields(mnist):
    t = split_tasks(mnist, "task")[1]
    fields = dict(name=t.name, classes=t.classes, x_train=t.x_train, y_train=t.y_train,
                  x_test=t.x_test, y_test=t.y_test, original_labels=(2, 3))
    with pytest.raises(ValueError, match="scenario"):
        SplitTask(**fields, scenario="joint", task_id=1)
    with pytest.raises(ValueError, match="task_id"):
        SplitTask(**fields, scenario="task", task_id=-1)
    assert "task-incremental" in repr(t) and "task_id=1" in repr(t)
