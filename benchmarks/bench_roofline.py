"""Training throughput of MLP and TestNet at batch 256 against the machine's fp32 matmul rate.

A roofline-style figure: FLOP/s achieved by ``partial_fit`` (FLOPs of forward + backward
counted by ``torch.utils.flop_counter``) divided by the FLOP/s of a large fp32 matrix
product on the same threads. No target yet; small layers cannot reach the matmul rate.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from ewclab.experiment import make_model

BATCH = 256


def _best_of(fn, repeats: int, rounds: int = 5) -> float:
    """Smallest mean seconds per call over ``rounds`` rounds of ``repeats`` calls."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


def matmul_rate(n: int = 1024) -> float:
    """fp32 FLOP/s of an ``n x n`` by ``n x n`` matrix product."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    seconds = _best_of(lambda: torch.mm(a, b, out=out), repeats=10)
    return 2 * n**3 / seconds


def training_rate(kind: str) -> tuple[float, float, float]:
    """(FLOPs per step, seconds per step, samples/s) of ``partial_fit`` at batch 256."""
    model = make_model(kind, seed=0)
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(BATCH, 1, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, size=BATCH)
    with FlopCounterMode(display=False) as counter:
        model.partial_fit(X, y)
    flops = counter.get_total_flops()
    seconds = _best_of(lambda: model.partial_fit(X, y), repeats=10)
    return flops, seconds, BATCH / seconds


def run() -> str:
    peak = matmul_rate()
    lines = [
        "## 5. Roofline: training throughput vs the fp32 matmul rate",
        "",
        f"fp32 matmul (1024³, {torch.get_num_threads()} threads): **{peak / 1e9:.1f} GFLOP/s**.",
        "",
        "| model (batch 256) | MFLOP per step | ms per step | samples/s | GFLOP/s | "
        "fraction of matmul rate |",
        "|---|---|---|---|---|---|",
    ]
    for kind in ("mlp", "testnet"):
        flops, seconds, samples = training_rate(kind)
        rate = flops / seconds
        lines.append(
            f"| {kind} | {flops / 1e6:.0f} | {1e3 * seconds:.1f} | {samples:,.0f} | "
            f"{rate / 1e9:.1f} | {rate / peak:.0%} |"
        )
    lines += [
        "",
        "FLOPs are forward + backward of one `partial_fit` (loss, penalty and optimiser "
        "arithmetic are not counted). No target yet. The MLP is three matrix products per "
        "pass and gets closest to the matmul rate; TestNet's small convolutions (10 and 20 "
        "channels, 5×5) and its pooling are memory-bound, so it reaches a small fraction.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
