"""Logging through the ``ewclab`` logger: silent by default, the seed's basicConfig shows
training, INFO tells the story of a run, ``ewclab demo -v/-vv`` turns it on."""

from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import replace

import pytest

from ewclab import MLP, learner
from ewclab.cli import main
from ewclab.data import load_task
from ewclab.experiment import run_sequence

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def batch():
    task = load_task("mnist")
    return task.x_train[:64, None], task.y_train[:64]


def _small(name: str, n: int = 128):
    task = load_task(name)
    return replace(task, x_train=task.x_train[:n], y_train=task.y_train[:n],
                   x_test=task.x_test[:n], y_test=task.y_test[:n])


def _messages(caplog, name: str, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == name and r.levelno == level]


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=True)


def test_silent_by_default():
    """Importing ewclab configures nothing, and its records reach no one unless asked."""
    done = _python(
        "import logging, ewclab, ewclab.widgets, ewclab.cli\n"
        "assert logging.getLogger().handlers == [], logging.getLogger().handlers\n"
        "logging.getLogger('ewclab.experiment').warning('should not be seen')\n"
    )
    assert done.stderr == "" and done.stdout == ""
    handlers = logging.getLogger("ewclab").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def test_seed_basic_config_reports_training():
    """``logging.basicConfig(level=logging.DEBUG)``, as the seed does, shows each step's loss."""
    done = _python(
        "import logging\n"
        "logging.basicConfig(level=logging.DEBUG)\n"
        "from ewclab import MLP, load_task\n"
        "t = load_task('mnist')\n"
        "m = MLP(hidden=(16,), seed=0)\n"
        "for _ in range(3):\n"
        "    m.partial_fit(t.x_train[:32, None], t.y_train[:32])\n"
        "m.consolidate(t.x_train[:32, None], t.y_train[:32])\n"
    )
    steps = [line for line in done.stderr.splitlines() if line.startswith("DEBUG:ewclab.learner")]
    assert len(steps) == 3 and "loss" in steps[0], done.stderr
    assert "INFO:ewclab.ewc:consolidate: " in done.stderr and "Fisher on 32 samples" in done.stderr


def test_each_step_logs_its_loss_at_debug(caplog, batch):
    X, y = batch
    model = MLP(hidden=(16,), seed=0, ewc_lambda=50.0)
    model.consolidate(X, y)
    with caplog.at_level(logging.DEBUG, logger="ewclab"):
        loss = model.partial_fit(X, y)
    (message,) = _messages(caplog, "ewclab.learner", logging.DEBUG)
    assert message.startswith(f"step on 64 samples: loss {loss:.4f} = cross-entropy ")
    assert "+ penalty" in message


def test_no_step_logging_when_debug_is_off(caplog, batch, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a step formatted a DEBUG record that nobody wants")

    monkeypatch.setattr(learner.logger, "debug", forbidden)
    X, y = batch
    model = MLP(hidden=(16,), seed=0)
    with caplog.at_level(logging.INFO, logger="ewclab"):
        model.partial_fit(X, y)
        model.fit(X, y, epochs=1, batch_size=32)
    assert not [r for r in caplog.records if r.levelno < logging.INFO]


def test_consolidation_logs_kind_samples_and_summary(caplog, batch):
    X, y = batch
    model = MLP(hidden=(16,), seed=0, ewc_lambda=50.0)
    with caplog.at_level(logging.INFO, logger="ewclab"):
        F = model.consolidate(X, y, fisher="exact")
        model.consolidate(X[:32], y[:32])
    total = sum(float(f.sum()) for f in F.values())
    count = sum(f.numel() for f in F.values())
    top = max(float(f.max()) for f in F.values())
    first, summary, second, later = _messages(caplog, "ewclab.ewc", logging.INFO)
    assert first == "consolidate: exact Fisher on 64 samples"
    assert summary == (
        f"EWC (separate, λ = 50): anchored 1 term(s); this task's F mean {total / count:.3g}, "
        f"max {top:.3g} over {count} weights"
    )
    assert second == f"consolidate: {model.ewc.fisher} Fisher on 32 samples"
    assert later.startswith("EWC (separate, λ = 50): anchored 2 term(s); this task's F mean ")


def test_a_run_logs_tasks_fishers_and_evaluations(caplog):
    tasks = [_small("mnist"), _small("fashion-mnist")]
    with caplog.at_level(logging.INFO, logger="ewclab"):
        history = run_sequence(tasks, "mlp", "ewc", lam=10.0, epochs=1, fisher_samples=64,
                               width=16)
    R = history.accuracy_matrix
    story = _messages(caplog, "ewclab.experiment", logging.INFO)
    assert story == [
        "task 1/2 'mnist': 1 epoch(s) from step 0 (ewc, λ = 10)",
        f"after task 'mnist': test accuracy mnist {100 * R[0, 0]:.1f}%, "
        f"fashion-mnist {100 * R[0, 1]:.1f}%",
        "Fisher of 'mnist': exact, on 64 samples; fisher importance anchored",
        "task 2/2 'fashion-mnist': 1 epoch(s) from step 2 (ewc, λ = 10)",
        f"after task 'fashion-mnist': test accuracy mnist {100 * R[1, 0]:.1f}%, "
        f"fashion-mnist {100 * R[1, 1]:.1f}%",
        "Fisher of 'fashion-mnist': exact, on 64 samples; fisher importance anchored",
    ]
    # the run calls learner.consolidate after each task: its kind and samples, then the term
    ewc_story = _messages(caplog, "ewclab.ewc", logging.INFO)
    assert ewc_story[0::2] == ["consolidate: exact Fisher on 64 samples"] * 2
    assert [m.split(";")[0] for m in ewc_story[1::2]] == [
        "EWC (separate, λ = 10): anchored 1 term(s)", "EWC (separate, λ = 10): anchored 2 term(s)"]
    assert not _messages(caplog, "ewclab.learner", logging.DEBUG)  # INFO: no step noise


@pytest.fixture
def cli_logging():
    """Leave the ``ewclab`` logger as the CLI found it."""
    logger = logging.getLogger("ewclab")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


@pytest.mark.parametrize(("flags", "info", "debug"),
                         [([], False, False), (["-v"], True, False), (["-vv"], True, True)])
def test_demo_verbosity(flags, info, debug, capsys, cli_logging):
    argv = ["demo", "-e", "0.05", "--width", "8", "--quiet", "--ewc", "--lambda", "5", *flags]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert ("INFO ewclab.experiment: task 1/2 'mnist'" in err) is info, err
    assert ("INFO ewclab.ewc: EWC (separate, λ = 5)" in err) is info, err
    assert ("DEBUG ewclab.learner: step on 64 samples" in err) is debug, err[:2000]
    named = [h for h in logging.getLogger("ewclab").handlers if h.get_name() == "ewclab-cli"]
    assert len(named) == (1 if flags else 0)


def test_demo_without_v_undoes_an_earlier_v(capsys, cli_logging):
    argv = ["demo", "-e", "0.05", "--width", "8", "--quiet"]
    assert main([*argv, "-v"]) == 0 and main([*argv, "-v"]) == 0
    assert len([h for h in logging.getLogger("ewclab").handlers
                if h.get_name() == "ewclab-cli"]) == 1
    assert main(argv) == 0
    assert logging.getLogger("ewclab").level == logging.NOTSET
    capsys.readouterr()
    assert main(argv) == 0
    assert "INFO" not in capsys.readouterr().err


def test_evaluation_points_are_logged_at_debug(caplog):
    tasks = [_small("mnist"), _small("fashion-mnist")]
    with caplog.at_level(logging.DEBUG, logger="ewclab"):
        history = run_sequence(tasks, "mlp", "sgd", epochs=1, fisher_samples=64, width=16,
                               eval_every=1)
    points = [m for m in _messages(caplog, "ewclab.training", logging.DEBUG)
              if m.startswith("step ")]
    assert len(points) == len(history.steps) - 1  # all but the evaluation before training
    step, mnist, fashion = history.steps[-1], *(history.accuracy[t][-1] for t in history.tasks)
    assert points[-1].startswith(f"step {step} (training 'fashion-mnist'): loss ")
    assert points[-1].endswith(f"test accuracy mnist {100 * mnist:.1f}%, "
                               f"fashion-mnist {100 * fashion:.1f}%")
