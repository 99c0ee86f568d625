import io
import threading

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ewclab import plots, toy  # noqa: E402
from ewclab.history import History  # noqa: E402


def png_size(fig: Figure) -> int:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    return len(buf.getvalue())


def check_figure(fig: Figure) -> None:
    assert isinstance(fig, Figure)
    assert fig.get_size_inches()[0] <= 10
    assert png_size(fig) > 5000
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            assert ax.get_ylabel() or ax.get_xlabel()
        else:
            assert ax.get_title() and ax.get_xlabel(), f"unlabelled axes {ax}"


def history(points: int = 6) -> History:
    h = History(["A", "B"], {"method": "ewc", "lam": 50.0})
    h.record(0, {"A": 0.1, "B": 0.1})
    h.start_task("A", 0)
    for k in range(1, points + 1):
        h.record(k, {"A": 0.1 + 0.8 * k / points, "B": 0.1})
    h.finish_task("A", {"A": 0.9, "B": 0.1})
    h.start_task("B", points)
    return h


def test_plot_accuracy_draws_curves_boundaries_and_learned_levels():
    h = history()
    fig = plots.plot_accuracy(h)
    check_figure(fig)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "test accuracy (%)" and "step" in ax.get_xlabel()
    assert "EWC" in ax.get_title() and "50" in ax.get_title()
    assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] >= 100
    curves = [line for line in ax.get_lines() if line.get_label() in ("task A", "task B")]
    assert len(curves) == 2
    np.testing.assert_allclose(curves[0].get_ydata(), 100 * np.array(h.accuracy["A"]))
    dashed = ax.collections  # one LineCollection per task learned so far
    assert len([c for c in dashed if c.get_linestyle()[0][1] is not None]) == 1
    assert len(ax.patches) == 2  # one shaded span per started task


def test_plot_accuracy_accepts_the_dict_form_and_an_empty_history():
    h = history()
    from_dict = plots.plot_accuracy(h.to_dict())
    assert [t.get_text() for t in from_dict.axes[0].texts] == []
    empty = plots.plot_accuracy(History(["A", "B"]))
    check_figure(empty)
    with pytest.raises(TypeError):
        plots.plot_accuracy([1, 2, 3])
    with pytest.raises(ValueError, match="missing"):
        plots.plot_accuracy({"tasks": ["A"]})


def test_plot_accuracy_redraws_into_the_same_figure():
    h = history(points=2)
    fig = plots.plot_accuracy(h)
    n_axes = len(fig.axes)
    for k in range(3, 8):
        h.record(k, {"A": 0.5, "B": 0.5})
        assert plots.plot_accuracy(h, fig=fig) is fig
        assert len(fig.axes) == n_axes
        assert len(fig.legends) == 1
    assert len(fig.axes[0].get_lines()[0].get_xdata()) == len(h.steps)
    check_figure(fig)


def test_plot_accuracy_from_a_worker_thread_while_training_writes():
    h = history()
    errors = []

    def draw():
        try:
            for _ in range(3):
                png_size(plots.plot_accuracy(h.snapshot()))
        except Exception as err:  # noqa: BLE001 - reported to the main thread below
            errors.append(err)

    worker = threading.Thread(target=draw)
    worker.start()
    for k in range(100):
        h.record(10 + k, {"A": 0.5, "B": 0.5})
    worker.join()
    assert errors == []


def test_plot_accuracy_matrix_annotates_percent_and_unknown_cells():
    R = np.array([[0.9, 0.1], [np.nan, 0.95]])
    fig = plots.plot_accuracy_matrix(R, tasks=["A", "B"])
    check_figure(fig)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["90.0", "10.0", "–", "95.0"]
    assert ax.get_ylabel() == "after training task i"
    assert ax.get_xlabel() == "accuracy on task j"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "B"]
    from_history = plots.plot_accuracy_matrix(history())
    assert [t.get_text() for t in from_history.axes[0].texts][:2] == ["90.0", "10.0"]


@pytest.mark.parametrize(
    "R, tasks", [(np.ones((2, 3)), None), (np.full((2, 2), 90.0), None), (np.eye(2), ["A"])]
)
def test_plot_accuracy_matrix_rejects_bad_input(R, tasks):
    with pytest.raises(ValueError):
        plots.plot_accuracy_matrix(R, tasks)


def tradeoff_results():
    results = [{"method": "sgd", "lam": 0.0, "acc_a": 0.3, "acc_b": 0.97}]
    for lam in (1.0, 10.0, 100.0):
        for seed in range(2):
            results.append({"method": "ewc", "lam": lam, "acc_a": 0.5 + 0.1 * seed, "acc_b": 0.9})
            results.append({"method": "l2", "lam": lam, "acc_a": 0.4, "acc_b": 0.6})
    return results


def test_plot_tradeoff_has_log_lambda_axes_and_sgd_reference():
    fig = plots.plot_tradeoff(tradeoff_results())
    check_figure(fig)
    ax_a, ax_b = fig.axes
    assert ax_a.get_xscale() == ax_b.get_xscale() == "log"
    assert "λ" in ax_a.get_xlabel() and "%" in ax_a.get_ylabel()
    labels = [line.get_label() for line in ax_a.get_lines()]
    assert labels == ["plain SGD (λ = 0)", "L2", "EWC"]
    sgd = ax_a.get_lines()[0]
    assert sgd.get_ydata()[0] == pytest.approx(30.0)
    np.testing.assert_allclose(ax_a.get_lines()[2].get_ydata(), [55.0, 55.0, 55.0])  # seed mean


@pytest.mark.parametrize(
    "results",
    [
        [],
        [{"method": "adam", "lam": 1.0, "acc_a": 0.5, "acc_b": 0.5}],
        [{"method": "ewc", "lam": 1.0, "acc_a": 50.0, "acc_b": 0.5}],
        [{"method": "ewc", "lam": 1.0}],
    ],
)
def test_plot_tradeoff_rejects_bad_results(results):
    with pytest.raises(ValueError):
        plots.plot_tradeoff(results)


def mlp_fisher(seed: int = 0, zero_columns: slice = slice(0, 0)) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    fisher = {
        "fc1.weight": torch.rand(16, 784, generator=g) ** 4,
        "fc1.bias": torch.rand(16, generator=g),
        "fc2.weight": torch.rand(10, 16, generator=g) ** 2,
        "fc2.bias": torch.zeros(10),
    }
    fisher["fc1.weight"][:, zero_columns] = 0
    return fisher


def images(fig: Figure):
    return [im for ax in fig.axes for im in ax.images]


@pytest.mark.filterwarnings("error")
def test_plot_fisher_for_an_mlp_shows_the_input_pixels_on_a_log_scale():
    fig = plots.plot_fisher(mlp_fisher(zero_columns=slice(0, 100)))
    check_figure(fig)
    titles = [ax.get_title() for ax in fig.axes]
    assert any("input pixels" in t for t in titles)
    assert any(t.startswith("fc2.weight") for t in titles)
    pixel_map = images(fig)[0]
    assert pixel_map.get_array().shape == (28, 28)
    assert isinstance(pixel_map.norm, LogNorm) and pixel_map.norm.vmin > 0
    assert all(isinstance(im.norm, LogNorm) for im in images(fig))
    hist = [ax for ax in fig.axes if ax.get_xscale() == "log"]
    assert len(hist) == 1 and "Fisher value" in hist[0].get_xlabel()


def test_plot_fisher_for_a_cnn_tiles_filters_and_says_conv():
    g = torch.Generator().manual_seed(1)
    fisher = {
        "conv1.weight": torch.rand(6, 3, 3, 3, generator=g),
        "conv1.bias": torch.rand(6, generator=g),
        "fc.weight": torch.rand(10, 2400, generator=g),
    }
    fig = plots.plot_fisher(fisher)
    check_figure(fig)
    first, mosaic, fc = images(fig)
    assert "conv" in fig.axes[0].get_title()
    assert first.get_array().shape == (3, 3)
    assert mosaic.get_array().shape == (2 * 4 - 1, 3 * 4 - 1)  # 6 filters: 2 rows of 3, gaps
    assert fc.get_array().shape[1] <= 300  # block-averaged, axis still in input units
    assert fc.get_extent()[1] == pytest.approx(2400 - 0.5)


def test_plot_fisher_uses_model_order_and_rejects_bad_input():
    model = torch.nn.Sequential(torch.nn.Linear(784, 16), torch.nn.Linear(16, 10))
    fisher = {n: torch.rand_like(p) for n, p in reversed(list(model.named_parameters()))}
    fig = plots.plot_fisher(fisher, model)
    assert fig.axes[0].get_title().startswith("0.weight")
    with pytest.raises(ValueError, match="weight"):
        plots.plot_fisher({"bias": torch.ones(3)})
    with pytest.raises(ValueError, match=">= 0"):
        plots.plot_fisher({"w.weight": -torch.ones(3, 3)})
    with pytest.raises(TypeError):
        plots.plot_fisher([torch.ones(3, 3)])


def test_plot_fisher_layer_for_each_kind_of_tensor():
    fisher = mlp_fisher()
    fisher["conv.weight"] = torch.rand(4, 2, 5, 5)
    for name, n_images in (("fc1.weight", 2), ("fc2.weight", 1), ("fc1.bias", 1)):
        fig = plots.plot_fisher_layer(fisher, name)
        assert len(images(fig)) == n_images
        assert name in fig.get_suptitle()
    check_figure(plots.plot_fisher_layer(fisher, "conv.weight"))
    with pytest.raises(ValueError, match="fc3.weight"):
        plots.plot_fisher_layer(fisher, "fc3.weight")


def test_plot_fisher_compare_shares_one_colour_scale():
    f_a = mlp_fisher(0, zero_columns=slice(0, 200))
    f_b = mlp_fisher(1, zero_columns=slice(500, 784))
    fig = plots.plot_fisher_compare(f_a, f_b, labels=("empirical", "exact"))
    check_figure(fig)
    im_a, im_b, ratio = images(fig)
    assert (im_a.norm.vmin, im_a.norm.vmax) == (im_b.norm.vmin, im_b.norm.vmax)
    assert im_a.norm.vmax == pytest.approx(max(im_a.get_array().max(), im_b.get_array().max()))
    assert ratio.norm.vmin == -ratio.norm.vmax
    assert fig.axes[0].get_title().startswith("empirical")
    bad = {"fc1.weight": torch.rand(16, 100)}
    with pytest.raises(ValueError, match="shape"):
        plots.plot_fisher_compare(f_a, bad)


def test_plot_toy_draws_contours_optima_and_three_paths():
    a, b = toy.make_tasks()
    paths = toy.descent_paths(a, b, lam=3.0, steps=100)
    fig = plots.plot_toy(a, b, paths, lam=3.0)
    check_figure(fig)
    ax = fig.axes[0]
    assert "λ = 3" in ax.get_title()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert [t.split(":")[0] for t in legend[:3]] == ["plain SGD", "L2", "EWC"]
    assert "task A loss contours" in legend and "task B loss contours" in legend
    n_axes = len(fig.axes)
    assert plots.plot_toy(a, b, toy.descent_paths(a, b, lam=0.0), fig=fig) is fig
    assert len(fig.axes) == n_axes
    with pytest.raises(ValueError, match="paths"):
        plots.plot_toy(a, b, {"adam": paths["sgd"]})


# -- lesson figures: chance line, markers, overlay, masked matrix, Laplace picture ------------
def test_plot_accuracy_chance_line_and_one_marker_per_task():
    fig = plots.plot_accuracy(history(), chance=0.1)
    ax = fig.axes[0]
    chance = [line for line in ax.get_lines() if line.get_label() == "chance (10 %)"]
    assert len(chance) == 1 and list(chance[0].get_ydata()) == [10, 10]
    markers = {line.get_marker() for line in ax.get_lines() if line.get_label().startswith("task")}
    assert len(markers) == 2  # tasks differ by marker, not only by colour
    assert not [line for line in plots.plot_accuracy(history()).axes[0].get_lines()
                if line.get_label().startswith("chance")]
    with pytest.raises(ValueError, match="chance"):
        plots.plot_accuracy(history(), chance=10)


def test_plot_accuracy_overlay_draws_every_run_and_task():
    plain, ewc = history(), history()
    fig = plots.plot_accuracy_overlay({"plain SGD": plain, "EWC": ewc}, chance=0.1)
    check_figure(fig)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert {"plain SGD: task A", "plain SGD: task B", "EWC: task A", "EWC: task B"} <= set(labels)
    styles = {line.get_linestyle() for line in ax.get_lines() if ":" in line.get_label()}
    assert len(styles) == 2  # one line style per run
    other = History(["A", "C"], {"method": "sgd"})
    with pytest.raises(ValueError, match="other tasks"):
        plots.plot_accuracy_overlay({"a": plain, "b": other})
    with pytest.raises(ValueError):
        plots.plot_accuracy_overlay({})


def test_plot_accuracy_matrix_masks_untrained_cells():
    R = np.array([[0.9, 0.1, 0.12], [0.8, 0.9, 0.1], [0.7, 0.8, 0.9]])
    fig = plots.plot_accuracy_matrix(R, mask_untrained=True)
    masked = [t.get_text() for t in fig.axes[0].texts]
    assert masked.count("not\ntrained") == 3 and "10.0" not in masked and "70.0" in masked
    shown = [t.get_text() for t in plots.plot_accuracy_matrix(R).axes[0].texts]
    assert "10.0" in shown and "not\ntrained" not in shown
    with pytest.raises(TypeError, match="mask_untrained"):
        plots.plot_accuracy_matrix(R, mask_untrained=1)


def test_plot_laplace_marks_the_joint_optimum_and_the_diagonal_end():
    a, b = toy.rotated(toy.make_tasks()[0], 30.0), toy.make_tasks()[1]
    fig = plots.plot_laplace(a, b, lam=1.0)
    check_figure(fig)
    ax = fig.axes[0]
    joint = toy.end_point(a, b, 1.0, "laplace")
    stars = [line for line in ax.get_lines() if line.get_marker() == "*"]
    np.testing.assert_allclose(np.ravel(stars[0].get_xydata()), joint)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    total = float(a.loss(joint) + b.loss(joint))
    assert f"full-Fisher penalty: $L_A + L_B$ = {total:.2f}" in legend
    assert plots.plot_laplace(a, b, fig=fig) is fig


def test_plot_toy_tradeoff_draws_one_curve_per_method():
    a, b = toy.make_tasks()
    lams = np.logspace(-1, 2, 7)
    losses = {m: toy.end_losses(a, b, lams, m) for m in ("l2", "ewc")}
    fig = plots.plot_toy_tradeoff(lams, losses, mark=1.0)
    check_figure(fig)
    curves = [line for line in fig.axes[0].get_lines() if line.get_label().startswith("EWC")]
    np.testing.assert_allclose(curves[0].get_xdata(), losses["ewc"][:, 0])
    with pytest.raises(ValueError, match="shape"):
        plots.plot_toy_tradeoff(lams[:3], losses)
    with pytest.raises(ValueError, match="keys"):
        plots.plot_toy_tradeoff(lams, {"adam": losses["l2"]})


@pytest.mark.parametrize("n_layers", [2, 3, 4])
def test_plot_fisher_leaves_no_empty_panel(n_layers):
    g = torch.Generator().manual_seed(0)
    sizes = [784, 32, 16, 12, 10][: n_layers + 1]
    fisher = {f"fc{k}.weight": torch.rand(o, i, generator=g)
              for k, (i, o) in enumerate(zip(sizes, sizes[1:], strict=False), start=1)}
    fig = plots.plot_fisher(fisher)
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    grid = panels[0].get_subplotspec().get_gridspec()
    covered = set()
    for ax in panels:
        spec = ax.get_subplotspec()
        covered |= {(r, c) for r in spec.rowspan for c in spec.colspan}
    assert covered == {(r, c) for r in range(grid.nrows) for c in range(grid.ncols)}
