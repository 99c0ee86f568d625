import numpy as np
import pytest

from ewclab.toy import Quadratic, descent_paths, loss_grid, make_tasks, penalty_weights


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
