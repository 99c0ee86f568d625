"""AlexNet and TestNet at their defaults: the notes' training loop, and the demo's story.

1. The loop of the original notes (uint8 MNIST batches of 64 from ``batchify``, repeated
   to 3 channels for AlexNet, NCHW, one ``partial_fit`` per batch) for AlexNet at width 1.0
   and 0.25 and for TestNet: test accuracy on the bundled MNIST after 100, 200 and 300
   steps and seconds per training step. Target: >= 90 % within 300 steps for AlexNet.
   Controls at width 0.25 undo the two fixes of ``ewclab.models.AlexNet`` (He
   initialisation; pools that keep a 6×6 map) one at a time, to show what each does.
2. The demo's story (mnist->fashion, ``ewclab.settings.defaults`` for testnet and
   alexnet): task A after A, A after B without and with EWC, B after B. Target: A drops
   >= 30 points without EWC and <= 10 with it, B within 10 points of plain training.

One torch thread; seed 0. ``python benchmarks/bench_models.py`` prints the section.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np
import torch
from run_all import cpu_model
from torch import nn

from ewclab.data import batchify, load_task
from ewclab.experiment import run_sequence
from ewclab.models import AlexNet, Learner, MaybeMaxPool2d, TestNet
from ewclab.settings import defaults

STEPS, EVERY, BATCH, SEED = 300, 100, 64, 0
TASKS = "mnist->fashion"


def _seed_layout(x: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 3, 28, 28), the notes' repeat and transpose."""
    return np.transpose(np.repeat(x[:, :, :, np.newaxis], 3, axis=3), (0, 3, 1, 2))


def _pytorch_init(model: nn.Module) -> None:
    """Undo He initialisation: PyTorch's own default for every conv and linear layer."""
    for layer in model.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            layer.reset_parameters()


def _pool_to_2x2(model: nn.Module) -> None:
    """Undo the 6×6 rule: pool wherever the window fits (28×28 MNIST -> a 2×2 map)."""
    for layer in model.modules():
        if isinstance(layer, MaybeMaxPool2d):
            layer.min_out = 1


def notes_loop(build: Callable[[], Learner], three_channels: bool) -> tuple[list[float], float]:
    """Test accuracies after every ``EVERY`` steps, and training seconds per step."""
    mnist = load_task("mnist")
    test_x = _seed_layout(mnist.x_test) if three_channels else mnist.x_test[:, None]
    torch.manual_seed(SEED)  # dropout
    model = build()
    batches = batchify(mnist.x_train, mnist.y_train, batch_size=BATCH)
    accuracies, seconds = [], 0.0
    for step in range(1, STEPS + 1):
        x, y = next(batches)
        x = _seed_layout(x) if three_channels else x[:, None]
        start = time.perf_counter()
        model.partial_fit(x, y)
        seconds += time.perf_counter() - start
        if step % EVERY == 0:
            accuracies.append(model.score(test_x, mnist.y_test))
    return accuracies, seconds / STEPS


def _alexnet(width: float, *undo: Callable[[nn.Module], None]) -> Callable[[], Learner]:
    def build() -> Learner:
        model = AlexNet(num_classes=10, width=width, seed=SEED)
        for change in undo:
            change(model)
        return model
    return build


def loop_rows() -> list[str]:
    cases = [
        ("AlexNet(num_classes=10)", "width 1.0, defaults", _alexnet(1.0), True),
        ("AlexNet(num_classes=10, width=0.25)", "defaults", _alexnet(0.25), True),
        ("AlexNet width 0.25", "PyTorch init, pools to 2×2 (before)",
         _alexnet(0.25, _pytorch_init, _pool_to_2x2), True),
        ("AlexNet width 0.25", "PyTorch init, 6×6 map", _alexnet(0.25, _pytorch_init), True),
        ("AlexNet width 0.25", "He init, pools to 2×2", _alexnet(0.25, _pool_to_2x2), True),
        ("TestNet(10)", "defaults", lambda: TestNet(10, seed=SEED), False),
    ]
    rows = []
    for name, variant, build, three in cases:
        accuracies, per_step = notes_loop(build, three)
        cells = " | ".join(f"{100 * a:.1f}" for a in accuracies)
        rows.append(f"| {name} | {variant} | {cells} | {per_step:.3f} |")
        print(rows[-1], flush=True)
    return rows


def story_rows(model: str) -> list[str]:
    """The demo's cells for ``model`` at its defaults, without and with EWC."""
    results = {}
    for method in ("sgd", "ewc"):
        s = defaults(TASKS, model, method)
        start = time.perf_counter()
        history = run_sequence(
            TASKS, model=model, method=method, lam=s.lam, lr=s.lr, width=s.width,
            epochs=s.epochs, fisher=s.fisher, fisher_samples=s.fisher_samples, seed=s.seed,
            eval_every=10**9,
        )
        results[method] = (100 * history.accuracy_matrix, time.perf_counter() - start, s)
    (R, t_sgd, s), (E, t_ewc, s_ewc) = results["sgd"], results["ewc"]
    drop_sgd, drop_ewc = R[0, 0] - R[1, 0], E[0, 0] - E[1, 0]
    holds = drop_sgd >= 30 and drop_ewc <= 10 and E[1, 1] >= R[1, 1] - 10
    width = "" if s.width is None else f" width {s.width:g}"
    row = (f"| {model}{width} | {s.lr:g} | {s.epochs:g} | {s_ewc.lam:g} | {R[0, 0]:.1f} | "
           f"{R[1, 0]:.1f} ({drop_sgd:.1f}) | {E[1, 0]:.1f} ({drop_ewc:.1f}) | {R[1, 1]:.1f} | "
           f"{E[1, 1]:.1f} | {t_sgd:.0f} + {t_ewc:.0f} | {'holds' if holds else 'MISSED'} |")
    print(row, flush=True)
    return [row]


def machine() -> str:
    """The machine line of the section: CPU, cores, torch."""
    return f"{cpu_model()}, {os.cpu_count()} logical cores, torch {torch.__version__}"


def run() -> str:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    started = time.strftime("%Y-%m-%d %H:%M")
    try:
        loops = loop_rows()
        stories = story_rows("testnet") + story_rows("alexnet")
    finally:
        torch.set_num_threads(threads)
    return "\n".join([
        "## 10. AlexNet and TestNet at their defaults",
        "",
        f"Machine: {machine()}. Measured from {started} (load average {load} at the start, "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} at the end: the CPU was shared "
        "with other jobs, which changes seconds, not accuracies), one torch thread, bundled "
        f"data, seed {SEED}.",
        "",
        f"The original notes' loop: uint8 MNIST batches of {BATCH} from `batchify`, repeated "
        "to 3 channels for AlexNet, NCHW, one `partial_fit` per batch, SGD lr 0.01 "
        "(momentum 0.9); accuracy on the bundled MNIST test set (1000 images); seconds per "
        "training step (evaluation not counted). Target: AlexNet >= 90 % within "
        f"{STEPS} steps at width 1.0 and 0.25. The width-0.25 controls undo one or both "
        "fixes of `ewclab.models.AlexNet`.",
        "",
        "| model | variant | 100 steps (%) | 200 steps (%) | 300 steps (%) | s / step |",
        "|---|---|---|---|---|---|",
        *loops,
        "",
        f"The demo's story ({TASKS}, `ewclab.settings.defaults` per model: lr, epochs per "
        "task, width, EWC λ; exact Fisher on 1000 samples). Target: task A drops >= 30 "
        "points without EWC and <= 10 with it; task B within 10 points of plain training.",
        "",
        "| model | lr | epochs | λ | A after A (%) | A after B, SGD (drop) | A after B, EWC "
        "(drop) | B after B, SGD (%) | B after B, EWC (%) | seconds (SGD + EWC) | story |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *stories,
    ])


if __name__ == "__main__":
    print(run())
