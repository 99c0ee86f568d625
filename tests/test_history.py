import csv
import io
import json
import math
import threading

import numpy as np
import pytest
import torch

from ewclab.history import History


def two_task_run() -> History:
    h = History(["A", "B"], {"method": "ewc", "lam": 100.0})
    h.record(0, {"A": 0.1, "B": 0.12})
    h.start_task("A", 0)
    h.record(10, {"A": 0.9, "B": 0.2})
    h.finish_task("A", {"A": 0.9, "B": 0.2})
    h.start_task("B", 10)
    h.record(20, {"A": 0.7, "B": 0.95})
    return h


def test_record_start_finish_fill_the_fields():
    h = two_task_run()
    assert h.tasks == ["A", "B"]
    assert h.steps == [0, 10, 20]
    assert h.accuracy == {"A": [0.1, 0.9, 0.7], "B": [0.12, 0.2, 0.95]}
    assert h.boundaries == [0, 10]
    assert h.settings == {"method": "ewc", "lam": 100.0}


def test_accuracy_matrix_is_nan_until_known():
    h = History(["A", "B", "C"])
    assert h.accuracy_matrix.shape == (3, 3)
    assert np.isnan(h.accuracy_matrix).all()
    h.start_task("A", 0)
    h.finish_task("A", {"A": 0.9, "B": 0.1, "C": 0.05})
    np.testing.assert_allclose(h.accuracy_matrix[0], [0.9, 0.1, 0.05])
    assert np.isnan(h.accuracy_matrix[1:]).all()


@pytest.mark.parametrize(
    "call",
    [
        lambda h: h.record(5, {"A": 0.5}),  # missing task B
        lambda h: h.record(5, {"A": 0.5, "B": 1.5}),  # not a fraction
        lambda h: h.record(5, {"A": 0.5, "B": float("nan")}),
        lambda h: h.record(-1, {"A": 0.5, "B": 0.5}),
        lambda h: h.record(15, {"A": 0.5, "B": 0.5, "C": 0.5}),  # unknown task
        lambda h: h.record(5, {"A": 0.5, "B": 0.5}),  # goes back in time (last is 10)
        lambda h: h.start_task("A", 20),  # already started; B is next
        lambda h: h.start_task("B", 3),  # before the last step
        lambda h: h.finish_task("B", {"A": 0.5, "B": 0.5}),  # B not started
        lambda h: h.finish_task("A", {"A": 0.5, "B": 0.5}),  # A already finished
    ],
)
def test_bad_calls_raise_and_leave_state_unchanged(call):
    h = History(["A", "B"])
    h.start_task("A", 0)
    h.record(10, {"A": 0.8, "B": 0.1})
    h.finish_task("A", {"A": 0.8, "B": 0.1})
    before = h.to_dict()
    with pytest.raises((ValueError, TypeError)):
        call(h)
    assert h.to_dict() == before


@pytest.mark.parametrize(
    "tasks, settings",
    [([], None), (["A", "A"], None), ("AB", None), (["A", ""], None), (["A"], {"f": object()})],
)
def test_bad_construction_raises(tasks, settings):
    with pytest.raises((ValueError, TypeError)):
        History(tasks, settings)


def test_dict_and_json_round_trip(tmp_path):
    h = two_task_run()
    d = h.to_dict()
    assert d["accuracy_matrix"][1] == [None, None]
    path = tmp_path / "run.json"
    text = h.to_json(path)
    assert path.read_text() == text
    back = History.from_dict(json.loads(text))
    assert back.to_dict() == d
    assert back.tasks == h.tasks and back.steps == h.steps and back.boundaries == h.boundaries
    np.testing.assert_array_equal(back.accuracy_matrix, h.accuracy_matrix)  # NaN == NaN here
    assert back.fisher == {}


def test_from_dict_rejects_inconsistent_data():
    d = two_task_run().to_dict()
    d["accuracy"]["A"] = d["accuracy"]["A"][:-1]
    with pytest.raises(ValueError, match="accuracy"):
        History.from_dict(d)
    with pytest.raises(ValueError, match="missing"):
        History.from_dict({"tasks": ["A"]})


def test_csv_is_long_format_and_round_trips(tmp_path):
    h = History(["A", "B,with comma"])
    h.record(0, {"A": 1 / 3, "B,with comma": 0.25})
    h.record(7, {"A": 0.5, "B,with comma": 2 / 3})
    path = tmp_path / "run.csv"
    text = h.to_csv(path)
    assert path.read_text() == text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["step", "task", "accuracy"]
    assert len(rows) == 4
    for row in rows:
        k = h.steps.index(int(row["step"]))
        assert float(row["accuracy"]) == h.accuracy[row["task"]][k]  # exact, not approximate


def test_snapshot_is_independent_of_later_writes():
    h = two_task_run()
    h.fisher["A"] = {"w": torch.ones(2)}
    snap = h.snapshot()
    h.record(30, {"A": 0.6, "B": 0.96})
    h.finish_task("B", {"A": 0.6, "B": 0.96})
    h.fisher["B"] = {"w": torch.zeros(2)}
    assert snap.steps == [0, 10, 20]
    assert len(snap.accuracy["A"]) == 3
    assert np.isnan(snap.accuracy_matrix[1]).all()
    assert list(snap.fisher) == ["A"]
    snap.record(40, {"A": 0.0, "B": 0.0})  # writing the copy leaves the original alone
    assert h.steps[-1] == 30


def test_snapshots_are_consistent_while_a_thread_writes():
    n = 5000
    h = History(["A", "B"])
    h.start_task("A", 0)

    def train():
        for step in range(1, n + 1):
            h.record(step, {"A": step / n, "B": 1 - step / n})

    writer = threading.Thread(target=train)
    writer.start()
    seen = []
    while writer.is_alive() or not seen:
        snap = h.snapshot()
        d = snap.to_dict()
        assert len(snap.steps) == len(snap.accuracy["A"]) == len(snap.accuracy["B"])
        pairs = zip(snap.steps, snap.accuracy["A"], strict=True)
        assert all(math.isclose(a, s / n) for s, a in pairs)
        json.dumps(d, allow_nan=False)
        seen.append(len(snap.steps))
    writer.join()
    assert seen == sorted(seen)
    assert len(h.steps) == n
