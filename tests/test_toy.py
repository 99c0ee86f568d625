import numpy as np
import pytest

from ewclab.toy import (
    Quadratic,
    descent_paths,
    dominating_lams,
    end_losses,
    end_point,
    gaussian_ellipse,
    loss_grid,
    make_tasks,
    penalty_weights,
    rotated,
)


@pytest.fixture
def tasks():
    return make_tasks()


@pytest.mark.parametrize("lam", [0.3, 1.0, 10.0])
def test_ewc_forgets_task_a_less_than_plain_training(tasks, lam):
    a, b = tasks
    paths = descent_paths(a, b, lam)
    assert a.loss(paths["ewc"][-1]) < a.loss(paths["sgd"][-1])


@pytest.mark.parametrize("lam", [0.3, 1.0, 10.0])
def test_l2_ends_closer_to_theta_a_than_plain_training(tasks, lam):
    a, b = tasks
    paths = descent_paths(a, b, lam)
    distance = {m: np.linalg.norm(p[-1] - a.optimum) for m, p in paths.items()}
    assert distance["l2"] < distance["sgd"]


def test_ewc_beats_l2_on_both_tasks_for_the_default_pair(tasks):
    a, b = tasks
    end = {m: p[-1] for m, p in descent_paths(a, b, 1.0).items()}
    assert a.loss(end["ewc"]) < a.loss(end["l2"])
    assert b.loss(end["ewc"]) < b.loss(end["l2"])


def test_lam_zero_makes_all_paths_coincide(tasks):
    paths = descent_paths(*tasks, lam=0.0, steps=50)
    np.testing.assert_array_equal(paths["l2"], paths["sgd"])
    np.testing.assert_array_equal(paths["ewc"], paths["sgd"])


def test_paths_start_at_theta_a_and_are_deterministic(tasks):
    first = descent_paths(*tasks, lam=2.0, steps=40)
    second = descent_paths(*tasks, lam=2.0, steps=40)
    for m in ("sgd", "l2", "ewc"):
        assert first[m].shape == (41, 2)
        np.testing.assert_array_equal(first[m][0], tasks[0].optimum)
        np.testing.assert_array_equal(first[m], second[m])


@pytest.mark.parametrize("lam", [0.5, 100.0])
def test_paths_converge_to_the_penalised_optimum(tasks, lam):
    a, b = tasks
    paths = descent_paths(a, b, lam, steps=3000)
    for method, path in paths.items():
        w = lam * np.diag(penalty_weights(a, method))
        # minimiser of L_B + λ/2 Σ w_i (θ_i − θ*_A,i)²: (H_B + λW) θ = H_B θ*_B + λW θ*_A
        expected = np.linalg.solve(b.hessian + w, b.hessian @ b.optimum + w @ a.optimum)
        np.testing.assert_allclose(path[-1], expected, atol=1e-6)


def test_explicit_lr_is_used_and_checked(tasks):
    a, b = tasks
    paths = descent_paths(a, b, lam=1.0, steps=1, lr=0.01)
    step = paths["l2"][1] - paths["l2"][0]
    np.testing.assert_allclose(step, -0.01 * b.grad(a.optimum))  # penalty gradient is 0 at θ*_A
    with pytest.raises(ValueError, match="lr"):
        descent_paths(a, b, lam=100.0, lr=0.5)


@pytest.mark.parametrize(
    "kwargs", [{"lam": -1.0}, {"lam": float("nan")}, {"lam": 1.0, "steps": 0}, {"lam": 1, "lr": 0}]
)
def test_bad_arguments_raise(tasks, kwargs):
    with pytest.raises(ValueError):
        descent_paths(*tasks, **kwargs)


def test_quadratic_loss_gradient_and_fisher():
    q = Quadratic(optimum=[1.0, -2.0], hessian=[[3.0, 1.0], [1.0, 2.0]])
    theta = np.array([0.5, 0.25])
    eps = 1e-6
    numeric = [(q.loss(theta + eps * e) - q.loss(theta - eps * e)) / (2 * eps) for e in np.eye(2)]
    np.testing.assert_allclose(q.grad(theta), numeric, rtol=1e-6)
    assert q.loss(q.optimum) == 0.0
    np.testing.assert_array_equal(q.fisher(), [3.0, 2.0])  # diagonal of H
    with pytest.raises(ValueError):
        Quadratic(optimum=[0.0, 0.0], hessian=[[1.0, 0.0], [0.0, -1.0]])
    with pytest.raises(ValueError):
        Quadratic(optimum=[0.0, 0.0, 0.0], hessian=np.eye(2))


def test_default_task_a_is_narrow_along_one_axis_only(tasks):
    f = tasks[0].fisher()
    assert f.max() / f.min() > 10


def test_loss_grid_matches_pointwise_loss(tasks):
    a = tasks[0]
    t1, t2, loss = loss_grid(a, (-1.0, 2.0), (-3.0, 1.0), n=7)
    assert t1.shape == t2.shape == loss.shape == (7, 7)
    assert loss[2, 5] == pytest.approx(a.loss(np.array([t1[2, 5], t2[2, 5]])))


# -- lesson 00's trade-off and lesson 02b's Laplace picture ------------------------------------
def test_end_point_is_where_the_paths_end(tasks):
    a, b = tasks
    paths = descent_paths(a, b, 3.0, steps=3000)
    for method in ("sgd", "l2", "ewc"):
        np.testing.assert_allclose(end_point(a, b, 3.0, method), paths[method][-1], atol=1e-6)


def test_laplace_with_lam_one_is_the_joint_optimum(tasks):
    a, b = rotated(tasks[0], 30.0), tasks[1]
    joint = end_point(a, b, 1.0, "laplace")
    np.testing.assert_allclose(a.grad(joint) + b.grad(joint), 0.0, atol=1e-12)
    diagonal = end_point(a, b, 1.0, "ewc")  # the diagonal Fisher misses the tilt
    assert a.loss(diagonal) + b.loss(diagonal) > a.loss(joint) + b.loss(joint) + 0.1


def test_rotation_keeps_the_curvatures_and_mixes_the_diagonal(tasks):
    a = tasks[0]
    turned = rotated(a, 45.0)
    np.testing.assert_allclose(np.linalg.eigvalsh(turned.hessian), np.linalg.eigvalsh(a.hessian))
    np.testing.assert_allclose(turned.fisher(), [2.6, 2.6])  # both axes look alike to a diagonal
    np.testing.assert_allclose(rotated(a, 0.0).hessian, a.hessian)
    with pytest.raises(ValueError, match="degrees"):
        rotated(a, float("inf"))


def test_every_l2_lam_is_dominated_by_some_ewc_lam(tasks):
    l2 = np.logspace(-1, 2, 31)
    found = dominating_lams(*tasks, l2, np.logspace(-2, 4, 601))
    assert not np.isnan(found).any()
    ewc, plain = end_losses(*tasks, found, "ewc"), end_losses(*tasks, l2, "l2")
    assert (ewc <= plain).all()
    # and the check can fail: a grid of very weak EWC λ cannot match a stiff L2
    assert np.isnan(dominating_lams(*tasks, [100.0], [0.01])).all()


def test_gaussian_ellipse_is_one_standard_deviation_out():
    precision = np.array([[3.0, 1.0], [1.0, 2.0]])
    points = gaussian_ellipse(np.array([1.0, -1.0]), precision, n=50)
    d = points - [1.0, -1.0]
    np.testing.assert_allclose(np.einsum("ni,ij,nj->n", d, precision, d), 1.0)
    with pytest.raises(ValueError):
        gaussian_ellipse(np.zeros(2), -np.eye(2))
