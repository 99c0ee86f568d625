"""Lesson 07's helpers: the confusion matrix and the share of predictions in some classes
against hand counts, the comparison table against the published numbers, and the lesson's
figures from plain data."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ewclab.plots.scenarios import (  # noqa: E402
    plot_confusion,
    plot_importance_maps,
    plot_scenario_accuracy,
)
from ewclab.three_scenarios import (  # noqa: E402
    PUBLISHED,
    comparison_table,
    confusion_matrix,
    share_predicted,
)


class _Task:
    """The fields of a Task that confusion_matrix reads."""

    def __init__(self, name, x_test, y_test, num_classes):
        self.name, self.X_test, self.y_test, self.num_classes = name, x_test, y_test, num_classes


class _Fixed:
    """A 'model' that predicts the value stored in each image's first pixel."""

    def predict(self, X):
        return np.asarray(X).reshape(len(X), -1)[:, 0].astype(int)


def _task(name, y, pred, c=4):
    x = np.zeros((len(y), 2, 2), dtype=np.float32)
    x[:, 0, 0] = pred
    return _Task(name, x, np.asarray(y), c)


def test_confusion_matrix_counts_true_against_predicted_over_every_task():
    tasks = [_task("a", [0, 0, 1], [0, 3, 3]), _task("b", [2, 3], [3, 3])]
    cm = confusion_matrix(_Fixed(), tasks)
    expected = np.zeros((4, 4), dtype=int)
    for y, p in [(0, 0), (0, 3), (1, 3), (2, 3), (3, 3)]:
        expected[y, p] += 1
    np.testing.assert_array_equal(cm, expected)
    assert share_predicted(cm, [3]) == pytest.approx(4 / 5)
    assert share_predicted(cm, (2, 3, 3)) == pytest.approx(4 / 5)  # a class counted once
    first = confusion_matrix(_Fixed(), tasks, samples=1)
    assert first.sum() == 2 and first[0, 0] == 1 and first[2, 3] == 1


def test_confusion_matrix_refuses_mixed_heads_and_labels_outside_the_head():
    with pytest.raises(ValueError, match="num_classes"):
        confusion_matrix(_Fixed(), [_task("a", [0], [0], 4), _task("b", [0], [0], 2)])
    with pytest.raises(ValueError, match="labels"):
        confusion_matrix(_Fixed(), [_task("a", [0], [5], 4)])
    with pytest.raises(ValueError, match="tasks"):
        confusion_matrix(_Fixed(), [])
    with pytest.raises(ValueError, match="class"):
        share_predicted(np.eye(3), [3])
    with pytest.raises(ValueError, match="square"):
        share_predicted(np.ones((2, 3)), [0])


def test_comparison_table_sets_each_run_beside_its_published_row():
    ours = {"task": {"sgd": 0.956, "replay": 0.96}, "class": {"sgd": 0.191, "replay": 0.796}}
    lines = comparison_table(ours).splitlines()
    assert lines[0].count("|") == 7  # method, 2 of ours, 3 published columns
    assert "| sgd | 95.6 | 19.1 | none | 87.2 | 19.9 |" in lines
    assert "| replay | 96.0 | 79.6 | dgr+distill | 99.6 | 91.8 |" in lines
    unrun = [line for line in lines if line.startswith("| – |")]
    assert {line.split(" | ")[3] for line in unrun} == {"ewc", "online-ewc", "si", "joint"}
    assert PUBLISHED["joint"] == (99.7, 97.9)


def test_lesson_figures_from_plain_data():
    acc = {"task": {"sgd": 0.95, "ewc": 0.97}, "class": {"sgd": 0.19, "ewc": 0.18}}
    fig = plot_scenario_accuracy(acc, {"class": {"sgd": 0.199}}, {"task": 0.5, "class": 0.1})
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    cm = np.diag([5, 5, 5]) + np.eye(3, k=1, dtype=int)
    fig = plot_confusion({"a": cm, "b": cm.T}, highlight=[2])
    assert isinstance(fig, Figure)
    rng = np.random.default_rng(0)
    imp = {"net.1.weight": rng.random((4, 784)), "net.1.bias": rng.random(4)}
    imp["net.1.weight"][:, :28] = 0  # a blank first pixel row: no importance
    fig = plot_importance_maps({"Fisher": imp, "SI": imp})
    image = fig.axes[0].images[0].get_array()
    assert image.shape == (28, 28)
    assert np.allclose(image[1:], imp["net.1.weight"].sum(0).reshape(28, 28)[1:])
    with pytest.raises(ValueError, match="28×28"):
        plot_importance_maps({"bad": {"w.weight": np.ones((3, 5))}})
    with pytest.raises(ValueError, match="square"):
        plot_confusion({"bad": np.ones((2, 3))})
