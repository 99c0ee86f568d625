"""save / load: exact round trips and clear errors for files that are not ewclab models."""

from __future__ import annotations

import errno
import os
import pickle
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_learner import _assert_same, _batch, _state

from ewclab import persist
from ewclab.models import MLP, AlexNet, TestNet


def _trained(model):
    X, y = _batch(48)
    model.buffer.add("a", X, y)
    model.fit(X, y, epochs=1, batch_size=16)
    model.consolidate(X, y)
    Xb, yb = _batch(48, seed=1)
    model.buffer.add("b", Xb, (yb + 1) % 4)
    model.fit(Xb, (yb + 1) % 4, epochs=1, batch_size=16)
    model.consolidate(Xb, (yb + 1) % 4, fisher="exact")
    model.ewc_lambda = 3.5
    return model


@pytest.mark.parametrize(
    "make",
    [
        lambda: MLP(num_classes=4, hidden=(16, 8), device="cpu", seed=0, ewc_mode="online",
                    ewc_gamma=0.5),
        lambda: TestNet(num_classes=4, device="cpu", seed=0, optimizer="adam"),
        lambda: AlexNet(num_classes=4, width=0.1, pool="never", device="cpu", seed=0),
    ],
)
def test_round_trip_is_exact_and_training_continues_identically(make, tmp_path):
    model = _trained(make())
    path = tmp_path / "model.pt"
    model.save(path)
    loaded = type(model).load(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    _assert_same(_state(loaded), _state(model))
    assert len(loaded.ewc.terms) == len(model.ewc.terms) > 0
    assert (loaded.ewc.lam, loaded.ewc.mode, loaded.ewc.gamma) == (
        model.ewc.lam, model.ewc.mode, model.ewc.gamma)
    X, y = _batch(32, seed=2)
    for m in (model, loaded):
        torch.manual_seed(0)
        m.fit(X, y, epochs=1, batch_size=8)
    _assert_same(_state(loaded), _state(model))


def test_persist_load_returns_the_saved_class(tmp_path):
    path = tmp_path / "mlp.pt"
    MLP(num_classes=3, in_features=12, hidden=(5,), device="cpu").save(path)
    model = persist.load(path)
    assert isinstance(model, MLP) and model.config["hidden"] == (5,)
    with pytest.raises(ValueError, match="holds a MLP, not a TestNet"):
        TestNet.load(path)


def test_truncated_file_raises_naming_the_file(tmp_path):
    path = tmp_path / "model.pt"
    _trained(MLP(num_classes=4, hidden=(8,), device="cpu")).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="model.pt"):
        persist.load(path)


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize(
    "write",
    [
        lambda p: p.write_bytes(pickle.dumps(Evil())),
        lambda p: torch.save({"weights": torch.randn(3)}, p),
        lambda p: torch.save(Evil(), p),
        lambda p: torch.save([1, 2, 3], p),
        lambda p: p.write_bytes(b"not a model at all"),
        lambda p: torch.save({"format": "ewclab.learner", "version": 99}, p),
        lambda p: torch.save({"format": "ewclab.learner", "version": 1, "class": "Evil"}, p),
    ],
)
def test_foreign_files_raise_a_clear_error(write, tmp_path, capsys):
    path = tmp_path / "foreign.pt"
    write(path)
    with pytest.raises(ValueError, match="foreign.pt"):
        persist.load(path)
    assert "must never run" not in capsys.readouterr().out


def test_damaged_state_inside_a_valid_file_raises(tmp_path):
    path = tmp_path / "damaged.pt"
    model = MLP(num_classes=4, hidden=(8,), device="cpu")
    model.save(path)
    payload = torch.load(path, weights_only=True)
    payload["model"]["net.1.weight"] = torch.zeros(2, 2)
    torch.save(payload, path)
    with pytest.raises(ValueError, match="damaged.pt.*invalid"):
        MLP.load(path)


def test_load_does_not_disturb_the_global_rng(tmp_path):
    path = tmp_path / "m.pt"
    TestNet(device="cpu").save(path)
    state = torch.get_rng_state()
    TestNet.load(path, device="cpu")
    assert torch.equal(torch.get_rng_state(), state)
    assert np.isfinite(TestNet.load(path).predict_proba(np.zeros((1, 1, 28, 28)))).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_model_trains_and_loads_on_the_cpu(tmp_path):
    model = _trained(TestNet(num_classes=4, device="cuda", seed=0))
    assert next(model.parameters()).is_cuda and model.ewc.penalty().is_cuda
    path = tmp_path / "cuda.pt"
    model.save(path)
    loaded = TestNet.load(path, device="cpu")
    assert loaded.device == torch.device("cpu")
    for a, b in zip(model.parameters(), loaded.parameters(), strict=True):
        assert torch.equal(a.cpu(), b)
    loaded.partial_fit(*_batch(8))


# -- atomic save: a failed save never destroys the previous file ----------------------------

FSIZE_CHILD = """
import os, resource, signal, sys
import numpy as np, torch
torch.set_num_threads(1)
from ewclab.models import MLP
path = sys.argv[1]
model = MLP(num_classes=4, hidden=(8,), device="cpu", seed=0)
model.buffer.add("a", np.zeros((200, 1, 28, 28), np.float32), np.zeros(200, int))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # let write() fail with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path) + 1000, resource.RLIM_INFINITY))
try:
    model.save(path)
except OSError as err:
    print("OSError:", err)
"""


def _files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_save_past_a_file_size_limit_keeps_the_previous_checkpoint(tmp_path):
    """RLIMIT_FSIZE in a child process: the save fails part-way, the old file stays."""
    resource = pytest.importorskip("resource")
    assert resource  # the child uses it; skipped where the platform has no rlimits
    path = tmp_path / "model.pt"
    good = _trained(MLP(num_classes=4, hidden=(8,), device="cpu", seed=0))
    good.save(path)
    data = path.read_bytes()
    done = subprocess.run(
        [sys.executable, "-c", FSIZE_CHILD, str(path)], capture_output=True, text=True,
        timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert f"OSError: cannot save the model to {str(path)!r}" in done.stdout
    assert "file size limit" in done.stdout
    assert path.read_bytes() == data and _files(tmp_path) == ["model.pt"]
    _assert_same(_state(persist.load(path)), _state(good))


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   KeyboardInterrupt()])
def test_a_save_failing_mid_write_keeps_the_previous_file(tmp_path, monkeypatch, error):
    """A full device (ENOSPC) or an interruption after half the bytes: old file intact."""
    path = tmp_path / "model.pt"
    MLP(num_classes=4, hidden=(8,), device="cpu", seed=0).save(path)
    data = path.read_bytes()

    def half_then_fail(obj, f):
        f.write(data[: len(data) // 2])
        raise error

    monkeypatch.setattr(persist.torch, "save", half_then_fail)
    expected = OSError if isinstance(error, OSError) else KeyboardInterrupt
    with pytest.raises(expected) as info:
        MLP(num_classes=4, hidden=(16,), device="cpu", seed=1).save(path)
    if expected is OSError:
        assert info.value.errno == errno.ENOSPC and "model.pt" in str(info.value)
    assert path.read_bytes() == data and _files(tmp_path) == ["model.pt"]


def test_save_replaces_the_file_and_keeps_its_permissions(tmp_path):
    path = tmp_path / "model.pt"
    MLP(num_classes=4, hidden=(8,), device="cpu", seed=0).save(path)
    path.chmod(0o640)
    MLP(num_classes=4, hidden=(16,), device="cpu", seed=1).save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and _files(tmp_path) == ["model.pt"]
    assert persist.load(path).config["hidden"] == (16,)


def test_a_users_own_learner_saves_and_loads(tmp_path):
    """Any Learner subclass registers itself, so save/load know it without a list."""
    from torch import nn

    from ewclab.learner import Learner
    from ewclab.validation import InputSpec

    class TinyNet(Learner):
        def __init__(self, num_classes: int = 4, **options):
            super().__init__(dict(num_classes=num_classes), **options)

        def build(self, num_classes: int) -> InputSpec:
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, num_classes))
            return InputSpec(num_classes=num_classes, features=784)

        def forward(self, x):
            return self.net(x)

    assert persist.CLASSES["TinyNet"] is TinyNet
    model = _trained(TinyNet(seed=0, device="cpu"))
    path = tmp_path / "tiny.pt"
    model.save(path)
    again = TinyNet.load(path)
    assert type(again) is TinyNet
    _assert_same(_state(again), _state(model))
    with pytest.raises(ValueError, match="holds a TinyNet, not a MLP"):
        MLP.load(path)


def test_a_class_unknown_here_or_redefined_is_refused_clearly(tmp_path):
    model = MLP(hidden=(4,), seed=0, device="cpu")
    path = tmp_path / "m.pt"
    model.save(path)
    payload = torch.load(path, weights_only=True)
    payload["class"] = "NoSuchNet"
    torch.save(payload, path)
    with pytest.raises(ValueError, match="'NoSuchNet', a class not defined in this session"):
        persist.load(path)

    class Stale(MLP):
        pass

    stale = Stale(hidden=(4,), seed=0, device="cpu")

    class Stale(MLP):  # noqa: F811 - the same cell run again defines a new class
        pass

    with pytest.raises(TypeError, match="got Stale \\(redefined since\\)"):
        stale.save(tmp_path / "stale.pt")
    assert not (tmp_path / "stale.pt").exists()
