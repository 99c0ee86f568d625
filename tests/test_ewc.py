"""EWC penalty: value and gradient by hand, copied anchors, separate / online / L2 terms over
three tasks, validated settings that never half-land, and an exact, safe state round trip."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import Tensor, nn

from ewclab.ewc import EWC, MODES, Term
from ewclab.fisher import fisher_diagonal


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))


def weights(model: nn.Module) -> dict[str, Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def random_fisher(model: nn.Module, seed: int) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {name: torch.rand(p.shape, generator=g) + 0.1 for name, p in model.named_parameters()}


def shift(model: nn.Module, seed: int, scale: float = 0.3) -> None:
    """Move every weight by a random amount (training on a task, in short)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))


def hand_penalty(model: nn.Module, lam: float, terms: list[tuple[dict, dict]]) -> tuple:
    """λ/2 · Σ_terms Σ_i F_i (θ_i − θ*_i)² and its gradient λ · Σ_terms F_i (θ_i − θ*_i),
    in float64 from plain numbers."""
    value = 0.0
    grad = {name: torch.zeros(p.shape, dtype=torch.float64) for name, p in
            model.named_parameters()}
    for fisher, anchor in terms:
        for name, p in model.named_parameters():
            delta = p.detach().double() - anchor[name].double()
            value += 0.5 * lam * float((fisher[name].double() * delta**2).sum())
            grad[name] += lam * fisher[name].double() * delta
    return value, grad


def assert_penalty_is(ewc: EWC, model: nn.Module, lam: float, terms: list) -> None:
    value, grad = hand_penalty(model, lam, terms)
    penalty = ewc.penalty()
    assert penalty.shape == () and penalty.requires_grad
    assert float(penalty.detach()) == pytest.approx(value, rel=1e-5)
    names, params = zip(*model.named_parameters(), strict=True)
    for name, g in zip(names, torch.autograd.grad(penalty, params), strict=True):
        torch.testing.assert_close(g.double(), grad[name], rtol=1e-5, atol=1e-7)
    # the closed form the learners use: same value, same gradient, added to .grad
    for p in params:
        p.grad = None
    assert ewc.add_gradient() == pytest.approx(value, rel=1e-5)
    for name, p in zip(names, params, strict=True):
        got = torch.zeros_like(p) if p.grad is None else p.grad
        torch.testing.assert_close(got.double(), grad[name], rtol=1e-5, atol=1e-7)
        p.grad = None


def snapshot(ewc: EWC) -> dict:
    return ewc.state_dict()


def assert_same_state(a: dict, b: dict) -> None:
    """Settings equal and every tensor of every term bit-identical."""
    assert {k: v for k, v in a.items() if k != "tasks"} == {
        k: v for k, v in b.items() if k != "tasks"}
    assert len(a["tasks"]) == len(b["tasks"])
    for ta, tb in zip(a["tasks"], b["tasks"], strict=True):
        for part in ("fisher", "anchor"):
            assert list(ta[part]) == list(tb[part])
            for name in ta[part]:
                assert torch.equal(ta[part][name], tb[part][name]), (part, name)


# -- the penalty by hand ------------------------------------------------------------------------
def test_penalty_is_zero_without_tasks_at_the_anchor_and_with_lam_zero() -> None:
    model = tiny_model()
    ewc = EWC(model, lam=50.0)
    assert float(ewc.penalty().detach()) == 0.0
    X, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    ewc.consolidate(X, y)
    penalty = ewc.penalty()
    assert float(penalty.detach()) == 0.0
    grads = torch.autograd.grad(penalty, list(model.parameters()), allow_unused=True)
    assert all(g is None or float(g.abs().max()) == 0.0 for g in grads)
    shift(model, 1)
    assert float(ewc.penalty().detach()) > 0.0
    ewc.lam = 0.0
    assert float(ewc.penalty().detach()) == 0.0
    ewc.lam = 50.0
    ewc.reset()
    assert ewc.terms == [] and float(ewc.penalty().detach()) == 0.0


@pytest.mark.parametrize("lam", [0.7, 3000.0])
def test_penalty_value_and_gradient_match_the_hand_formula(lam: float) -> None:
    model = tiny_model()
    ewc = EWC(model, lam=lam)
    fisher, anchor = random_fisher(model, 0), weights(model)
    ewc.add_task(fisher)
    shift(model, 1)
    assert_penalty_is(ewc, model, lam, [(fisher, anchor)])


def test_penalty_uses_the_consolidated_fisher() -> None:
    model = tiny_model()
    ewc = EWC(model, lam=10.0, fisher="exact")
    X = torch.randn(20, 3)
    anchor = weights(model)
    F = ewc.consolidate(X)
    torch.testing.assert_close(F, fisher_diagonal(model, X, kind="exact"), rtol=0, atol=0)
    shift(model, 2)
    assert_penalty_is(ewc, model, 10.0, [(F, anchor)])


# -- anchors and Fishers are copies ------------------------------------------------------------
def test_anchor_is_a_copy_not_a_view_of_the_weights() -> None:
    model = tiny_model()
    ewc = EWC(model, lam=1.0)
    before = weights(model)
    F = ewc.consolidate(torch.randn(8, 3), torch.randint(0, 2, (8,)))
    stored = {k: v.clone() for k, v in ewc.terms[0].importance.items()}
    shift(model, 3)  # in-place updates, as an optimiser makes them
    for f in F.values():  # the caller's Fisher dict is theirs to change
        f.mul_(7)
    term = ewc.terms[0]
    for name, p in model.named_parameters():
        assert torch.equal(term.anchor[name], before[name])
        assert term.anchor[name].data_ptr() != p.data_ptr()
        assert not term.anchor[name].requires_grad
        assert torch.equal(term.importance[name], stored[name])


# -- separate, online and L2 over three tasks ------------------------------------------------
def consolidate_three(ewc: EWC, model: nn.Module) -> list[tuple[dict, dict]]:
    """Add three tasks, each with its own Fisher, moving the weights in between."""
    added = []
    for t in range(3):
        shift(model, 10 + t)
        fisher = random_fisher(model, t)
        added.append((fisher, weights(model)))
        ewc.add_task(fisher)
    shift(model, 20)
    return added


def test_separate_mode_keeps_one_term_per_task() -> None:
    model = tiny_model()
    ewc = EWC(model, lam=2.0, mode="separate")
    added = consolidate_three(ewc, model)
    assert len(ewc.terms) == 3 and all(isinstance(t, Term) for t in ewc.terms)
    for term, (fisher, anchor) in zip(ewc.terms, added, strict=True):
        for name in fisher:
            assert torch.equal(term.importance[name], fisher[name])
            assert torch.equal(term.anchor[name], anchor[name])
    assert_penalty_is(ewc, model, 2.0, added)


@pytest.mark.parametrize("gamma", [0.5, 1.0])
def test_online_mode_folds_the_fisher_with_gamma_and_keeps_the_latest_anchor(gamma) -> None:
    model = tiny_model()
    ewc = EWC(model, lam=2.0, mode="online", gamma=gamma)
    added = consolidate_three(ewc, model)
    assert len(ewc.terms) == 1
    (F1, _), (F2, _), (F3, latest) = added
    expected = {name: gamma * (gamma * F1[name] + F2[name]) + F3[name] for name in F1}
    term = ewc.terms[0]
    for name in F1:
        torch.testing.assert_close(term.importance[name], expected[name], rtol=1e-6, atol=0)
        assert torch.equal(term.anchor[name], latest[name])
    assert_penalty_is(ewc, model, 2.0, [(expected, latest)])


@pytest.mark.parametrize("make", [lambda m: EWC(m, lam=4.0, mode="l2"),
                                  lambda m: EWC.l2(m, lam=4.0)])
def test_l2_mode_uses_unit_importance_per_task(make) -> None:
    model = tiny_model()
    ewc = make(model)
    assert ewc.mode == "l2" and ewc.lam == 4.0
    added = consolidate_three(ewc, model)
    ones = {name: torch.ones_like(p) for name, p in model.named_parameters()}
    assert len(ewc.terms) == 3
    for term in ewc.terms:
        assert all(torch.equal(term.importance[n], ones[n]) for n in ones)
    assert_penalty_is(ewc, model, 4.0, [(ones, anchor) for _, anchor in added])
    # consolidate still returns the estimated Fisher (for plots), not the ones
    F = ewc.consolidate(torch.randn(8, 3), torch.randint(0, 2, (8,)))
    assert not all(torch.equal(F[n], ones[n]) for n in ones)


# -- validation: errors, and nothing changed ---------------------------------------------------
BAD_SETTINGS = [
    ("lam", -1.0, ValueError), ("lam", math.inf, ValueError), ("lam", math.nan, ValueError),
    ("lam", True, TypeError), ("lam", "100", TypeError), ("lam", None, TypeError),
    ("gamma", 0.0, ValueError), ("gamma", 1.5, ValueError), ("gamma", -0.5, ValueError),
    ("gamma", math.nan, ValueError), ("gamma", "1", TypeError),
    ("lam", 1e39, ValueError),  # beyond float32: the penalty would be inf
    ("mode", "kfac", ValueError), ("mode", None, TypeError),
    ("fisher", "fisher", ValueError), ("batch_size", 0, ValueError),
    ("batch_size", True, TypeError), ("batch_size", 2.5, TypeError),
]


def test_a_generator_must_be_a_torch_generator() -> None:
    with pytest.raises(TypeError, match="generator must be a torch.Generator or None, got 0"):
        EWC(tiny_model(), generator=0)


@pytest.mark.parametrize("name, value, error", BAD_SETTINGS)
def test_bad_setting_raises_in_the_constructor(name: str, value, error) -> None:
    with pytest.raises(error, match=name.replace("_", ".")):
        EWC(tiny_model(), **{name: value})


@pytest.mark.parametrize("name, value, error",
                         [s for s in BAD_SETTINGS if s[0] != "fisher"])
def test_bad_setting_assignment_raises_and_changes_nothing(name: str, value, error) -> None:
    model = tiny_model()
    ewc = EWC(model, lam=5.0, mode="online", gamma=0.9)
    ewc.add_task(random_fisher(model, 0))
    before = snapshot(ewc)
    with pytest.raises(error):
        setattr(ewc, name, value)
    assert_same_state(snapshot(ewc), before)


def test_mode_is_fixed_once_a_task_is_consolidated() -> None:
    model = tiny_model()
    ewc = EWC(model, mode="separate")
    ewc.mode = "online"  # free before the first task
    ewc.add_task(random_fisher(model, 0))
    ewc.mode = "online"  # the same mode again is fine
    before = snapshot(ewc)
    for other in ("separate", "l2"):
        with pytest.raises(ValueError, match="cannot switch mode"):
            ewc.mode = other
    assert_same_state(snapshot(ewc), before)


def bad_fishers(model: nn.Module) -> dict[str, object]:
    good = random_fisher(model, 0)
    first = next(iter(good))

    def changed(name: str, value: object) -> dict:
        return {**good, name: value}

    return {
        "missing name": {k: v for k, v in good.items() if k != first},
        "extra name": {**good, "extra.weight": torch.ones(2)},
        "wrong shape": changed(first, torch.ones(2, 2)),
        "transposed": changed(first, good[first].T.contiguous()),
        "not a tensor": changed(first, good[first].tolist()),
        "negative": changed(first, good[first] - 2.0),
        "nan": changed(first, good[first].clone().fill_(math.nan)),
        "inf": changed(first, good[first].clone().fill_(math.inf)),
        "a list": list(good.values()),
    }


@pytest.mark.parametrize("case", list(bad_fishers(tiny_model())))
@pytest.mark.parametrize("mode", MODES)
def test_add_task_rejects_a_bad_fisher_and_changes_nothing(case: str, mode: str) -> None:
    model = tiny_model()
    ewc = EWC(model, lam=3.0, mode=mode)
    ewc.add_task(random_fisher(model, 5))
    before, params = snapshot(ewc), weights(model)
    with pytest.raises(ValueError, match="fisher"):
        ewc.add_task(bad_fishers(model)[case])
    assert_same_state(snapshot(ewc), before)
    assert all(torch.equal(p, params[n]) for n, p in weights(model).items())


@pytest.mark.parametrize("X, y, kind", [
    (torch.randn(0, 3), torch.zeros(0, dtype=torch.long), None),
    (torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), None),
    (torch.randn(4, 3), None, "empirical"),
    (torch.randn(4, 3), torch.tensor([0, 1, 1, 0]), "kfac"),
])
def test_consolidate_with_bad_input_stores_nothing(X, y, kind) -> None:
    model = tiny_model()
    ewc = EWC(model, lam=3.0)
    ewc.add_task(random_fisher(model, 5))
    before = snapshot(ewc)
    with pytest.raises(ValueError):
        ewc.consolidate(X, y, fisher=kind)
    assert_same_state(snapshot(ewc), before)


# -- state round trip ---------------------------------------------------------------------------
def consolidated(mode: str = "separate") -> tuple[nn.Module, EWC]:
    model = tiny_model()
    ewc = EWC(model, lam=12.5, mode=mode, gamma=0.75, fisher="sampled", batch_size=5)
    consolidate_three(ewc, model)
    return model, ewc


@pytest.mark.parametrize("mode", MODES)
def test_state_dict_round_trip_is_exact(mode: str) -> None:
    model, ewc = consolidated(mode)
    state = ewc.state_dict()
    fresh = EWC(model)
    fresh.load_state_dict(state)
    assert_same_state(fresh.state_dict(), state)
    assert (fresh.lam, fresh.mode, fresh.gamma, fresh.fisher, fresh.batch_size) == (
        12.5, mode, 0.75, "sampled", 5)
    assert torch.equal(fresh.penalty(), ewc.penalty())
    # the state holds copies: changing it afterwards changes neither EWC
    for term in state["tasks"]:
        for f in term["fisher"].values():
            f.add_(1.0)
    assert_same_state(fresh.state_dict(), ewc.state_dict())


def test_state_survives_torch_save_and_a_weights_only_load() -> None:
    model, ewc = consolidated("online")
    buffer = io.BytesIO()
    torch.save(ewc.state_dict(), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    fresh = EWC(model)
    fresh.load_state_dict(loaded)
    assert_same_state(fresh.state_dict(), ewc.state_dict())


def malformed_states(ewc: EWC) -> dict[str, object]:
    good = ewc.state_dict()
    first = next(iter(good["tasks"][0]["fisher"]))

    def with_term(part: str, value: object) -> dict:
        state = ewc.state_dict()
        state["tasks"][1][part][first] = value
        return state

    return {
        "not a dict": None,
        "no lam": {k: v for k, v in good.items() if k != "lam"},
        "no tasks": {k: v for k, v in good.items() if k != "tasks"},
        "negative lam": {**good, "lam": -1.0},
        "string lam": {**good, "lam": "12.5"},
        "gamma 2": {**good, "gamma": 2.0},
        "unknown mode": {**good, "mode": "kfac"},
        "unknown kind": {**good, "fisher": "kfac"},
        "tasks a string": {**good, "tasks": "abc"},
        "term without anchor": {**good, "tasks": [{"fisher": good["tasks"][0]["fisher"]}]},
        "wrong shape": with_term("anchor", torch.zeros(1)),
        "nan anchor": with_term("anchor", torch.full_like(good["tasks"][0]["anchor"][first],
                                                          math.nan)),
        "negative fisher": with_term("fisher", -good["tasks"][0]["fisher"][first]),
        "online with 3 terms": {**good, "mode": "online"},
    }


MALFORMED = ["not a dict", "no lam", "no tasks", "negative lam", "string lam", "gamma 2",
             "unknown mode", "unknown kind", "tasks a string", "term without anchor",
             "wrong shape", "nan anchor", "negative fisher", "online with 3 terms"]


def test_every_malformed_case_is_tested() -> None:
    assert sorted(malformed_states(consolidated()[1])) == sorted(MALFORMED)


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_state_raises_and_changes_nothing(case: str) -> None:
    _, ewc = consolidated()
    _, target = consolidated("separate")
    target.lam, target.gamma = 1.0, 0.5
    before = snapshot(target)
    with pytest.raises(ValueError):
        target.load_state_dict(malformed_states(ewc)[case])
    assert_same_state(snapshot(target), before)


def test_stiffness_is_lam_times_largest_summed_fisher():
    """λ · max_i Σ_terms F_i, by hand, over two separate terms; 0 with λ = 0 or no term."""
    model = torch.nn.Linear(2, 1)
    ewc = EWC(model, lam=10.0)
    assert ewc.stiffness() == 0.0
    ones = {n: torch.ones_like(p) for n, p in model.named_parameters()}
    first = {"weight": torch.tensor([[0.5, 2.0]]), "bias": torch.tensor([1.0])}
    ewc.add_task(first)
    ewc.add_task({"weight": torch.tensor([[3.0, 0.0]]), "bias": torch.tensor([0.0])})
    assert ewc.stiffness() == pytest.approx(10.0 * 3.5)  # weight[0]: 0.5 + 3.0
    ewc.lam = 0.0
    assert ewc.stiffness() == 0.0
    l2 = EWC.l2(model, lam=2.0)
    l2.add_task(ones)
    assert l2.stiffness() == pytest.approx(2.0)


@pytest.mark.parametrize("mode", ["separate", "online"])
def test_cached_stiffness_follows_every_change_of_lambda_and_terms(mode):
    """stiffness() is cached per set of terms: after each change it equals a fresh EWC's."""
    model = tiny_model()
    ewc = EWC(model, lam=2.0, mode=mode, gamma=0.5)

    def fresh() -> float:
        other = EWC(model)
        other.load_state_dict(ewc.state_dict())
        return other.stiffness()

    for seed in range(3):
        ewc.add_task(random_fisher(model, seed))
        assert ewc.stiffness() == pytest.approx(fresh()) and fresh() > 0
        ewc.lam = 3.0 + seed
        assert ewc.stiffness() == pytest.approx(fresh())
    state = ewc.state_dict()
    ewc.reset()
    assert ewc.stiffness() == 0.0
    ewc.load_state_dict(state)
    assert ewc.stiffness() == pytest.approx(fresh()) and fresh() > 0
    ewc.terms = ewc.terms[:1]  # even a direct assignment to the term list
    assert ewc.stiffness() == pytest.approx(fresh())


def test_add_gradient_adds_to_an_existing_gradient_and_builds_no_graph():
    model = tiny_model()
    ewc = EWC(model, lam=3.0)
    ewc.add_task(random_fisher(model, 1))
    shift(model, 2)
    _, grad = hand_penalty(model, 3.0, [(ewc.terms[0].importance, ewc.terms[0].anchor)])
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    ewc.add_gradient()
    for name, p in model.named_parameters():
        assert p.grad.grad_fn is None
        torch.testing.assert_close(p.grad.double(), 1 + grad[name], rtol=1e-5, atol=1e-7)


def test_add_gradient_is_right_on_every_call_as_weights_and_dtype_change():
    """add_gradient keeps scratch buffers between calls; each call still sees the current
    weights, and a model moved to float64 gets buffers of its new dtype."""
    model = tiny_model()
    ewc = EWC(model, lam=2.0)
    ewc.add_task(random_fisher(model, 6))
    term = [(ewc.terms[0].importance, ewc.terms[0].anchor)]
    for k in (7, 8):
        shift(model, k)
        value, grad = hand_penalty(model, 2.0, term)
        for p in model.parameters():
            p.grad = None
        assert ewc.add_gradient() == pytest.approx(value, rel=1e-5)
        for name, p in model.named_parameters():
            torch.testing.assert_close(p.grad.double(), grad[name], rtol=1e-5, atol=1e-7)
    model.double()
    shift(model, 9)
    value, grad = hand_penalty(model, 2.0, term)
    for p in model.parameters():
        p.grad = None
    assert ewc.add_gradient() == pytest.approx(value, rel=1e-5)
    for name, p in model.named_parameters():
        assert p.grad.dtype == torch.float64
        torch.testing.assert_close(p.grad, grad[name], rtol=1e-5, atol=1e-7)


def test_add_gradient_follows_every_change_of_the_terms():
    """add_gradient keeps √F per set of terms; a new task, online folding, a direct
    assignment of the term list, a reset and a loaded state each give the right gradient."""
    model = tiny_model()
    ewc = EWC(model, lam=1.5, mode="online", gamma=0.5)

    def check() -> None:
        terms = [(t.importance, t.anchor) for t in ewc.terms]
        value, grad = hand_penalty(model, 1.5, terms)
        for p in model.parameters():
            p.grad = None
        assert ewc.add_gradient() == pytest.approx(value, rel=1e-5)
        for name, p in model.named_parameters():
            got = torch.zeros_like(p) if p.grad is None else p.grad
            torch.testing.assert_close(got.double(), grad[name], rtol=1e-5, atol=1e-7)

    ewc.add_task(random_fisher(model, 10))
    shift(model, 11)
    check()
    ewc.add_task(random_fisher(model, 12))  # online: one new term, F folded with γ
    shift(model, 13)
    check()
    state = ewc.state_dict()
    ewc.terms = [Term({k: 3 * f for k, f in ewc.terms[0].importance.items()},
                      ewc.terms[0].anchor)]
    check()
    ewc.reset()
    check()
    ewc.load_state_dict(state)
    check()


def test_penalty_is_twice_differentiable_and_works_with_torch_func():
    """penalty() is the plain expression: its Hessian is diag(λ Σ F), and torch.func.grad
    of it through functional_call gives λ F (θ − θ*)."""
    model = tiny_model()
    ewc = EWC(model, lam=2.0)
    fisher = random_fisher(model, 4)
    ewc.add_task(fisher)
    shift(model, 5)
    weight = model[0].weight
    (g,) = torch.autograd.grad(ewc.penalty(), [weight], create_graph=True)
    (h,) = torch.autograd.grad(g[0, 0], [weight])
    expected = torch.zeros_like(weight)
    expected[0, 0] = 2.0 * fisher["0.weight"][0, 0]
    torch.testing.assert_close(h, expected)

    class Penalty(nn.Module):  # penalty() as a module's forward, for functional_call
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self):
            return ewc.penalty()

    moved = {f"model.{name}": p.detach() + 0.1 for name, p in model.named_parameters()}
    grads = torch.func.grad(lambda theta: torch.func.functional_call(Penalty(), theta, ()))(moved)
    anchor = ewc.terms[0].anchor
    for name in fisher:
        expected = 2.0 * fisher[name] * (moved[f"model.{name}"] - anchor[name])
        torch.testing.assert_close(grads[f"model.{name}"], expected)
