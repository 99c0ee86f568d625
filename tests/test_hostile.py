"""Hostile input against every public entry point: a clear error and nothing changed.

Each case calls one entry point with input a careless or malicious user could pass and
asserts (1) a ``TypeError`` or ``ValueError`` (``OSError`` for files) whose message
names the argument, and (2) that the weights, optimiser state, EWC state, buffer, the
model's own generators and the global torch / numpy RNGs are byte-identical afterwards.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ewclab import persist
from ewclab.buffer import TaskBuffer
from ewclab.data import batchify, load_task
from ewclab.fisher import fisher_diagonal
from ewclab.learner import DivergenceError
from ewclab.models import MLP, TestNet
from ewclab.validation import FLOAT32_MAX

torch.set_num_threads(1)

RNG = np.random.default_rng(0)
X = RNG.integers(0, 256, (12, 1, 28, 28), dtype=np.uint8)
Y = RNG.integers(0, 4, 12)
BAD = (TypeError, ValueError)


def _model(cls: type = MLP) -> Any:
    """A model with optimiser state, one consolidated task and a filled buffer."""
    kwargs = {"hidden": (8,)} if cls is MLP else {}
    model = cls(num_classes=4, device="cpu", seed=0, ewc_lambda=10.0, **kwargs)
    model.fit(X, Y, epochs=1, batch_size=6)
    model.buffer.add("a", X, Y)
    model.consolidate(X, Y)
    return model


@pytest.fixture(scope="module")
def trained() -> dict[type, Any]:
    return {cls: _model(cls) for cls in (MLP, TestNet)}


def _bytes(obj: Any) -> bytes:
    """A byte string that changes when any tensor's bytes or any value in ``obj`` change."""
    if torch.is_tensor(obj):
        t = obj.detach().cpu().contiguous()
        return repr((t.dtype, tuple(t.shape))).encode() + t.view(torch.uint8).numpy().tobytes()
    if isinstance(obj, dict):
        return b"{" + b",".join(repr(k).encode() + b":" + _bytes(v) for k, v in obj.items()) + b"}"
    if isinstance(obj, (list, tuple)):
        return b"[" + b",".join(_bytes(v) for v in obj) + b"]"
    if isinstance(obj, np.ndarray):
        return obj.tobytes()
    return repr(obj).encode()


def _state(model: Any = None, buffer: TaskBuffer | None = None) -> bytes:
    """Everything a failed call must leave alone, as bytes."""
    parts: dict[str, Any] = {
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state(),
    }
    if model is not None:
        parts.update(
            weights=model.state_dict(),
            optimizer=model.optimizer.state_dict(),
            ewc=model.ewc.state_dict(),
            buffer=model.buffer.state_dict(),
            shuffle_rng=model.shuffle_rng.get_state(),
            mode=[m.training for m in model.modules()],
        )
    if buffer is not None:
        parts["other_buffer"] = buffer.state_dict()
    return _bytes(parts)


def _refused(call: Callable[[], Any], model: Any = None, match: str = "",
             errors: Any = BAD, buffer: TaskBuffer | None = None) -> None:
    before = _state(model, buffer)
    with pytest.raises(errors, match=match):
        call()
    assert _state(model, buffer) == before, "a refused call changed the state"


NAN_X = np.full(X.shape, np.nan, np.float32)
HOSTILE_X = {
    "None": (None, "X must be"),
    "list": (X.tolist(), "X must be a numpy array or torch tensor"),
    "string": ("pixels", "X must be a numpy array or torch tensor"),
    "object array": (np.array([object()] * 12), "dtype object"),
    "int64 pixels": (X.astype(np.int64), "uint8 pixels .* or floating point"),
    "bool pixels": (X > 0, "uint8 pixels .* or floating point"),
    "complex": (X.astype(np.complex64), "uint8 pixels .* or floating point"),
    "3-D": (X[:, 0], "4 dimensions.*to_nchw"),
    "5-D": (X[:, None], "4 dimensions"),
    "empty": (X[:0], "empty"),
    "NaN": (NAN_X, "NaN or inf"),
    "inf": (np.full(X.shape, np.inf, np.float32), "NaN or inf"),
    "beyond float32": (np.full(X.shape, 1e300), "beyond float32"),
    "too many features": (np.zeros((12, 3, 28, 28), np.float32), "C\\*H\\*W|3 channels"),
    "channels-last 3": (np.zeros((12, 28, 28, 3), np.float32), "channels-last"),
}
HOSTILE_Y = {
    "None": (None, "y .*required"),
    "floats": (Y.astype(float), "integer class labels"),
    "bools": (Y > 1, "integer class labels"),
    "too large": (Y + 4, r"labels must be in \[0, 4\)"),
    "negative": (Y - 4, r"labels must be in \[0, 4\)"),
    "short": (Y[:5], "12 samples but y has 5"),
    "2-D": (Y[:, None], "1-D"),
    "string": ("abc", "y must be"),
    "uint64 huge": (np.full(12, 2**63 + 1, np.uint64), "class indices|labels must"),
}


@pytest.mark.parametrize("cls", [MLP, TestNet])
@pytest.mark.parametrize("case", list(HOSTILE_X))
def test_training_and_inference_refuse_bad_X(trained, cls, case):
    model = trained[cls]
    bad, message = HOSTILE_X[case]
    if cls is TestNet and case == "too many features":
        message = "3 channels"
    _refused(lambda: model.partial_fit(bad, Y), model, message)
    _refused(lambda: model.fit(bad, Y, epochs=1, batch_size=4), model, message)
    _refused(lambda: model.predict(bad), model, message)
    _refused(lambda: model.predict_proba(bad), model, message)
    _refused(lambda: model.score(bad, Y), model, message)
    _refused(lambda: model.consolidate(bad, Y), model, message)


@pytest.mark.parametrize("case", list(HOSTILE_Y))
def test_training_refuses_bad_labels(trained, case):
    model = trained[MLP]
    bad, message = HOSTILE_Y[case]
    _refused(lambda: model.partial_fit(X, bad), model, message)
    _refused(lambda: model.fit(X, bad), model, message)
    _refused(lambda: model.score(X, bad), model, message)
    if case != "None":  # consolidate(X) alone is the exact / sampled Fisher's call
        _refused(lambda: model.consolidate(X, bad, fisher="empirical"), model, message)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64, np.int32])
def test_every_integer_label_dtype_trains(dtype):
    model = MLP(num_classes=4, hidden=(8,), device="cpu", seed=0)
    assert math.isfinite(model.partial_fit(X, Y.astype(dtype)))
    assert 0 <= model.score(X, torch.from_numpy(Y.astype(dtype))) <= 1


COUNTS = {0: ValueError, -1: ValueError, 2.5: TypeError, True: TypeError, "4": TypeError,
          None: TypeError, 1e9 + 0.5: TypeError}


@pytest.mark.parametrize("value", list(COUNTS), ids=repr)
def test_counts_are_ints_numpy_or_not(trained, value):
    model = trained[MLP]
    error = COUNTS[value]
    _refused(lambda: model.fit(X, Y, epochs=value), model, "epochs must be an int >= 1", error)
    _refused(lambda: model.fit(X, Y, batch_size=value), model, "batch_size must be an int", error)
    _refused(lambda: model.predict(X, batch_size=value), model, "batch_size must be", error)
    _refused(lambda: fisher_diagonal(model, X, Y, batch_size=value), model, "batch_size", error)


def test_numpy_scalars_are_numbers():
    model = MLP(num_classes=4, hidden=(8,), device="cpu", seed=np.int64(0), lr=np.float32(0.5),
                momentum=np.float64(0.5), ewc_lambda=np.float32(3))
    assert model.config["seed"] == 0 and type(model.config["seed"]) is int
    model.fit(X, Y, epochs=np.int64(1), batch_size=np.int32(4))
    model.ewc.batch_size = np.int16(3)
    assert model.predict(X, batch_size=np.uint8(5)).shape == (12,)


SETTINGS = [  # (keyword, value, error, message)
    ("lr", True, TypeError, "lr must be a finite real number"),
    ("lr", float("nan"), ValueError, "lr must be"), ("lr", 0, ValueError, "lr must be"),
    ("lr", 1e39, ValueError, "lr must be"), ("lr", "0.1", TypeError, "lr must be"),
    ("momentum", 1.0, ValueError, "momentum must be"),
    ("momentum", float("nan"), ValueError, "momentum must be"),
    ("seed", 2**64, ValueError, r"seed must be an int in \[0, 2\*\*64 - 1\], got 1844674407"),
    ("seed", -1, ValueError, "seed must be"), ("seed", 1.0, TypeError, "seed must be"),
    ("seed", True, TypeError, "seed must be"),
    ("device", "bogus", ValueError, "device must be"), ("device", 3, TypeError, "device must"),
    ("hidden", (-4,), ValueError, r"hidden\[0\] must be an int >= 1"),
    ("hidden", 8, TypeError, "hidden must be a sequence"),
    ("num_classes", 0, ValueError, "num_classes must be"),
    ("optimizer", "rmsprop", ValueError, "optimizer must be one of"),
    ("optimizer", None, TypeError, "optimizer must be one of"),
    ("ewc_lambda", 1e39, ValueError, "ewc_lambda must be"),
    ("ewc_lambda", -1, ValueError, "ewc_lambda must be"),
    ("ewc_mode", "kfac", ValueError, "ewc_mode must be one of"),
    ("ewc_gamma", 0, ValueError, "ewc_gamma must be"),
    ("fisher", "fisher", ValueError, "fisher must be one of"),
    ("buffer_per_task", 0, ValueError, "buffer_per_task must be"),
]


@pytest.mark.parametrize("key, value, error, message", SETTINGS)
def test_constructor_refuses_bad_settings_before_drawing_random_numbers(key, value, error,
                                                                        message):
    kwargs = {"num_classes": 4, "hidden": (8,), "device": "cpu", key: value}
    _refused(lambda: MLP(**kwargs), None, message, error)


@pytest.mark.parametrize("key, value", [("lr", float("nan")), ("momentum", float("nan")),
                                        ("lr", -1.0), ("lr", "fast"), ("momentum", 1.5)])
def test_optimiser_settings_edited_in_place_are_refused_before_the_step(trained, key, value):
    model = copy.deepcopy(trained[MLP])
    model.optimizer.param_groups[0][key] = value
    message = rf"optimizer.param_groups\[0\]\['{key}'\] must be"
    _refused(lambda: model.partial_fit(X, Y), model, message)
    _refused(lambda: model.fit(X, Y), model, message)


@given(value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(),
                       st.booleans(), st.none(), st.text(max_size=3), st.complex_numbers()))
@settings(max_examples=60, deadline=None)
def test_lambda_is_accepted_exactly_when_a_finite_float32_number_at_least_zero(value):
    model = _tiny()
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and 0 <= value <= FLOAT32_MAX)
    if ok:
        model.ewc_lambda = value
        assert model.ewc_lambda == float(value)
    else:
        _refused(lambda: setattr(model, "ewc_lambda", value), model, "lam")


_TINY: list[Any] = []


def _tiny() -> Any:
    if not _TINY:
        _TINY.append(_model())
    return _TINY[0]


@pytest.mark.parametrize(
    "attr, value, error",
    [("lam", float("inf"), ValueError), ("lam", "1", TypeError), ("gamma", 0.0, ValueError),
     ("gamma", 2, ValueError), ("mode", "online", ValueError), ("mode", 3, TypeError),
     ("batch_size", 0, ValueError), ("batch_size", 2.0, TypeError),
     ("fisher", "bogus", ValueError), ("fisher", None, TypeError)],
)
def test_ewc_setters_refuse_and_change_nothing(trained, attr, value, error):
    model = trained[MLP]
    _refused(lambda: setattr(model.ewc, attr, value), model, attr, error)


def _fisher_of(model: Any, fill: float = 0.1) -> dict[str, torch.Tensor]:
    return {n: torch.full_like(p, fill) for n, p in model.named_parameters()}


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda m: None, "one tensor per trainable parameter"),
        (lambda m: [1, 2], "one tensor per trainable parameter"),
        (lambda m: {"w": torch.ones(2)}, "one tensor per trainable parameter"),
        (lambda m: {**_fisher_of(m), "net.1.weight": torch.ones(2)}, "must have shape"),
        (lambda m: _fisher_of(m, -1.0), ">= 0"),
        (lambda m: _fisher_of(m, float("nan")), "NaN or inf"),
        (lambda m: {**_fisher_of(m), "net.1.bias": "F"}, "must have shape"),
    ],
)
def test_add_task_refuses_bad_fishers(trained, make, message):
    model = trained[MLP]
    _refused(lambda: model.ewc.add_task(make(model)), model, message)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.pop("tasks"), "missing"),
        (lambda s: s.update(lam=float("nan")), "lam"),
        (lambda s: s.update(lam=1e39), "lam"),
        (lambda s: s.update(mode="kfac"), "mode"),
        (lambda s: s.update(tasks="x"), "tasks"),
        (lambda s: s["tasks"][0]["anchor"].update({"net.1.bias": torch.full((8,), np.nan)}),
         "NaN"),
        (lambda s: s.update(mode="online", tasks=s["tasks"] * 2), "online EWC state holds one"),
    ],
)
def test_ewc_load_state_dict_refuses_damaged_states(trained, change, message):
    model = trained[MLP]
    state = copy.deepcopy(model.ewc.state_dict())
    change(state)
    _refused(lambda: model.ewc.load_state_dict(state), model, message, ValueError)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"kind": "fisher"}, "kind must be one of"), ({"kind": None}, "kind must be one of"),
     ({"generator": "seed"}, "generator must be"), ({"y": None}, "needs the true labels")],
)
def test_fisher_diagonal_refuses_and_changes_nothing(trained, kwargs, message):
    model = trained[MLP]
    args = {"X": X, "y": Y, "kind": "empirical", **kwargs}
    if "generator" in kwargs:
        args["kind"] = "sampled"
    _refused(lambda: fisher_diagonal(model, **args), model, message)


def test_sampled_fisher_draws_from_the_models_own_generator():
    a, b = (MLP(num_classes=4, hidden=(8,), device="cpu", seed=0, fisher="sampled")
            for _ in range(2))
    torch.manual_seed(1)
    fa = a.consolidate(X)
    torch.manual_seed(2)  # a different global RNG must not matter
    fb = b.consolidate(X)
    assert all(torch.equal(fa[k], fb[k]) for k in fa)


@pytest.mark.parametrize(
    "args, kwargs, error, message",
    [
        ((X.tolist(), Y), {}, TypeError, "X must be a numpy array or torch tensor"),
        ((X, list(Y)), {}, TypeError, "y must be a numpy array or torch tensor"),
        ((np.float64(1.0), Y), {}, TypeError, "X must be"),
        ((X, Y[:3]), {}, ValueError, "same length"),
        ((X[:0], Y[:0]), {}, ValueError, "at least one sample"),
        ((X, Y, 2.5), {}, TypeError, "batch_size must be an int"),
        ((X, Y, 0), {}, ValueError, "batch_size must be an int >= 1"),
        ((X, Y), {"shuffle": "yes"}, TypeError, "shuffle must be True or False"),
        ((X, Y), {"seed": -1}, ValueError, "seed must be"),
        ((X, Y), {"seed": "x"}, TypeError, "seed must be"),
        ((X, Y), {"epochs": 0}, ValueError, "epochs must be an int >= 1"),
        ((X, Y), {"steps": 1.5}, TypeError, "steps must be an int"),
        ((X, Y), {"epochs": 1, "steps": 1}, ValueError, "epochs or steps, not both"),
    ],
)
def test_batchify_refuses_at_the_call(args, kwargs, error, message):
    _refused(lambda: batchify(*args, **kwargs), None, message, error)


@pytest.mark.parametrize(
    "task, Xb, yb, error, message",
    [
        (3, X, Y, TypeError, "task_name must be a str"),
        ("b", X.tolist(), Y, TypeError, "numpy arrays or torch tensors"),
        ("b", X, Y.astype(float), TypeError, "integer class labels"),
        ("b", X, Y - 5, ValueError, r"labels must be in \[0, 4\)"),
        ("b", X, Y + 4, ValueError, r"labels must be in \[0, 4\)"),
        ("b", NAN_X, Y, ValueError, "NaN or inf"),
        ("b", X, Y[:3], ValueError, "expected X of shape"),
        ("a", X[:, :, :14], Y, ValueError, "stores samples of shape"),
        ("a", X.astype(np.float32), Y, ValueError, "dtype"),
    ],
)
def test_buffer_add_refuses_and_changes_nothing(trained, task, Xb, yb, error, message):
    model = trained[MLP]
    _refused(lambda: model.buffer.add(task, Xb, yb), model, message, error)


@pytest.mark.parametrize(
    "change",
    [lambda s: s.pop("rng"), lambda s: s.update(per_task=0), lambda s: s.update(tasks=[1]),
     lambda s: s["tasks"]["a"].update(y=torch.full((12,), -1)),
     lambda s: s["tasks"]["a"].update(seen=1)],
)
def test_buffer_load_state_dict_refuses_and_changes_nothing(change):
    buffer = TaskBuffer(per_task=20, num_classes=4)
    buffer.add("a", X, Y)
    state = copy.deepcopy(buffer.state_dict())
    change(state)
    _refused(lambda: buffer.load_state_dict(state), None, "not a valid TaskBuffer state",
             ValueError, buffer=buffer)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [({"name": ["mnist"]}, TypeError, "name must be one of"),
     ({"name": None}, TypeError, "name must be one of"),
     ({"name": "cifar"}, ValueError, "name must be one of"),
     ({"name": "mnist", "source": "web"}, ValueError, "source must be one of"),
     ({"name": "mnist", "download": "yes"}, TypeError, "download must be True or False"),
     ({"name": "mnist", "source": "full", "root": 5}, TypeError, "root must be")],
)
def test_load_task_refuses_bad_arguments(kwargs, error, message):
    _refused(lambda: load_task(**kwargs), None, message, error)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: p["optimizer"]["param_groups"][0].update(lr=float("nan")), "lr"),
        (lambda p: p["optimizer"]["param_groups"][0].update(momentum=float("nan")), "momentum"),
        (lambda p: p["model"]["net.1.weight"].fill_(float("nan")), "NaN or inf"),
        (lambda p: p["optimizer"]["state"][0].update(momentum_buffer=torch.zeros(3)), "shape"),
        (lambda p: p["config"].update(hidden=(16384,)), "must be torch.float32 \\(16384"),
        (lambda p: p["config"].update(seed=2**64), "seed"),
        (lambda p: p["config"].update(lr=True), "lr"),
        (lambda p: p.update(config=[1]), "config"),
        (lambda p: p["ewc"].update(lam=1e39), "lam"),
        (lambda p: p["buffer"]["tasks"]["a"].update(y=torch.full((12,), 9)), "labels"),
    ],
)
def test_load_refuses_damaged_files(tmp_path, trained, change, message):
    path = tmp_path / "m.pt"
    trained[MLP].save(path)
    payload = torch.load(path, weights_only=True)
    change(payload)
    torch.save(payload, path)
    _refused(lambda: persist.load(path), None, f"m.pt.*{message}", ValueError)


def test_load_checks_sizes_before_building(tmp_path, monkeypatch):
    """A small file whose config asks for a huge network is refused without allocating."""
    path = tmp_path / "big.pt"
    MLP(num_classes=4, hidden=(8,), device="cpu").save(path)
    payload = torch.load(path, weights_only=True)
    payload["config"]["hidden"] = (16384, 16384)
    torch.save(payload, path)
    built = []
    original = torch.nn.Linear.reset_parameters

    def record(layer: torch.nn.Linear) -> None:
        built.append((layer.weight.device.type, layer.out_features))
        original(layer)

    monkeypatch.setattr(torch.nn.Linear, "reset_parameters", record)
    with pytest.raises(ValueError, match="big.pt.*weights must be named"):
        persist.load(path)
    assert built and all(device == "meta" for device, _ in built)


def test_save_refuses_and_leaves_the_model_alone(tmp_path, trained):
    model = trained[MLP]
    _refused(lambda: model.save(tmp_path / "missing" / "m.pt"), model, "missing.*m.pt", OSError)
    _refused(lambda: model.save(tmp_path), model, str(tmp_path.name), OSError)


def test_lambda_past_the_bound_is_refused_before_any_step_and_lowering_it_recovers(trained):
    """λ = 1e15 is refused by the stability bound; following the advice trains again."""
    model = copy.deepcopy(trained[MLP])
    model.ewc_lambda = 1e15
    _refused(lambda: model.partial_fit(X, (Y + 1) % 4), model, "ewc_lambda", DivergenceError)
    _refused(lambda: model.fit(X, (Y + 1) % 4, epochs=10, batch_size=4), model, "use ewc_lambda <",
             DivergenceError)
    model.ewc_lambda = 100.0
    assert math.isfinite(model.partial_fit(X, (Y + 1) % 4))
    assert all(torch.isfinite(p).all() for p in model.parameters())
