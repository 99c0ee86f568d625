"""One training step: ``partial_fit`` against a hand-written PyTorch step.

Same model object, same float32 batch, same optimiser (SGD, momentum 0.9); the hand step
is ``zero_grad; cross_entropy(model(X), y).backward(); step``. ``partial_fit`` adds input
validation, the EWC penalty (no task consolidated: zero), the finiteness checks and the
undo snapshot. Blocks of steps of the two kinds alternate and the medians are compared,
so a busy shared CPU slows both alike. Target: ratio <= 1.05.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ewclab.learner import Learner
from ewclab.models import MLP, TestNet

TARGET = 1.05
BLOCKS, STEPS = 15, 10  # alternating blocks, steps per block


def _block_time(step: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(STEPS):
        step()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / STEPS


def measure(model: Learner, batch: int) -> tuple[float, float]:
    """Median seconds per step: (hand-written, partial_fit)."""
    X = torch.rand(batch, 1, 28, 28, device=model.device)
    y = torch.randint(0, 10, (batch,), device=model.device)
    opt = model.optimizer

    def hand() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(X), y).backward()
        opt.step()

    def ours() -> None:
        model.partial_fit(X, y)

    model.train()
    for step in (hand, ours):
        _block_time(step)  # warm up
    hand_t, ours_t = [], []
    for _ in range(BLOCKS):
        hand_t.append(_block_time(hand))
        ours_t.append(_block_time(ours))
    return statistics.median(hand_t), statistics.median(ours_t)


def run() -> str:
    rows, verdicts = [], []
    for name, make in (("MLP 784-400-400-10", MLP), ("TestNet", TestNet)):
        for batch in (64, 256):
            hand, ours = measure(make(seed=0, ewc_lambda=100.0), batch)
            ratio = ours / hand
            rows.append(f"| {name} | {batch} | {hand * 1e3:.2f} | {ours * 1e3:.2f} | "
                        f"{ratio:.3f} |")
            met = "met" if ratio <= TARGET else "missed"
            verdicts.append(f"- {name}, batch {batch}: {ratio:.3f}× — target ≤ {TARGET}× {met}")
    device = "CUDA" if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    return "\n".join([
        "## Training step: partial_fit vs hand-written PyTorch",
        "",
        f"Median of {BLOCKS} alternating blocks of {STEPS} steps, SGD (lr 0.01, momentum 0.9), "
        f"float32 input, {device}.",
        "",
        "| model | batch | hand step (ms) | partial_fit (ms) | ratio |",
        "|---|---|---|---|---|",
        *rows,
        "",
        *verdicts,
    ])


if __name__ == "__main__":
    print(run())
