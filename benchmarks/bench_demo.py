"""The mnist->fashion demo end to end, the task-A cache, and (``grid()``) the λ/model grid.

Targets: a λ change with the task-A cache costs <= 0.6x a full run; each seed command
(``ewclab demo -e 50`` with and without ``--ewc``) takes about two minutes or less on 2
cores; the default demo teaches the lesson (task A drops >= 30 points without EWC,
<= 10 with it, task B within 10 points).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from ewclab.experiment import DEFAULTS, TaskACache, run_sequence
from ewclab.scenarios import get_scenario

ROOT = Path(__file__).resolve().parent.parent


def _timed(**kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    history = run_sequence(**kwargs)
    return time.perf_counter() - start, history


def _row(label: str, seconds: float, h) -> str:
    R = h.accuracy_matrix
    return (
        f"| {label} | {seconds:.1f} | {100 * R[0, 0]:.1f} | {100 * R[1, 0]:.1f} | "
        f"{100 * (R[0, 0] - R[1, 0]):.1f} | {100 * R[1, 1]:.1f} |"
    )


def _command(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ewclab", "demo", "--quiet", *args], cwd=ROOT,
                   check=True, capture_output=True)
    return time.perf_counter() - start


def run() -> str:
    tasks = get_scenario(DEFAULTS["tasks"])
    t_sgd, sgd = _timed(tasks=tasks, method="sgd")
    t_ewc, ewc = _timed(tasks=tasks, method="ewc")
    cache = TaskACache()
    t_miss, _ = _timed(tasks=tasks, method="ewc", cache=cache)
    t_hit, hit = _timed(tasks=tasks, method="ewc", lam=DEFAULTS["lam"] / 3, cache=cache)
    ratio = t_hit / t_miss
    t_e50 = _command(["-e", "50"])
    t_e50_ewc = _command(["-e", "50", "--ewc"])

    R, E = sgd.accuracy_matrix, ewc.accuracy_matrix
    lesson = (
        R[0, 0] - R[1, 0] >= 0.30 and E[0, 0] - E[1, 0] <= 0.10 and E[1, 1] >= R[1, 1] - 0.10
    )
    d = DEFAULTS
    return "\n".join([
        "## 4. The demo end to end, and the task-A cache",
        "",
        f"Defaults: {d['tasks']}, {d['model']} (width {d['width']}), {d['optimizer']} "
        f"lr {d['lr']} (momentum 0.9), batch {d['batch_size']}, {d['epochs']} epochs per task, "
        f"λ = {d['lam']:g}, {d['fisher']} Fisher on {d['fisher_samples']} samples, seed "
        f"{d['seed']}; bundled data (4000 train / 1000 test per task).",
        "",
        "| run | seconds | A after A (%) | A after B (%) | A drop (points) | B after B (%) |",
        "|---|---|---|---|---|---|",
        _row("`run_sequence` sgd (no EWC)", t_sgd, sgd),
        _row("`run_sequence` ewc", t_ewc, ewc),
        _row(f"ewc, λ = {d['lam'] / 3:g}, task A from the cache", t_hit, hit),
        "",
        "| measurement | seconds |",
        "|---|---|",
        f"| full ewc run (cache miss) | {t_miss:.1f} |",
        f"| λ change, task A from the cache | {t_hit:.1f} |",
        f"| `ewclab demo -e 50 --quiet` (a new process) | {t_e50:.1f} |",
        f"| `ewclab demo -e 50 --ewc --quiet` | {t_e50_ewc:.1f} |",
        "",
        f"- λ change with the cache / full run: **{ratio:.2f}×** (target ≤ 0.6×): "
        + ("met." if ratio <= 0.6 else "missed: task B and the evaluations dominate."),
        f"- seed commands with `-e 50`: {t_e50:.0f} s and {t_e50_ewc:.0f} s (target about "
        "120 s or less on 2 cores): " + ("met." if max(t_e50, t_e50_ewc) <= 130 else "missed."),
        "- lesson with the defaults (A drop ≥ 30 points without EWC, ≤ 10 with it, B within "
        "10 points): " + ("holds." if lesson else "**does not hold**."),
    ])


# -- the λ / model grid (slow: `python benchmarks/run_all.py --grid`) --------------------------

GRID = [
    # (label, run_sequence keywords, λ values); every row of one label shares task A
    ("mlp 400, sgd+momentum lr 0.01 (default)", {},
     [0, 30, 100, 300, 1000, 3000, 5000, 10000]),
    ("same, seed 1", {"seed": 1}, [0, 1000, 3000, 5000]),
    ("mlp 100, sgd+momentum lr 0.01", {"width": 100}, [0, 300, 1000, 3000]),
    ("mlp 400, adam lr 0.001", {"optimizer": "adam", "lr": 1e-3}, [0, 100, 1000, 10000]),
    ("testnet, sgd+momentum lr 0.01", {"model": "testnet"}, [0, 100, 1000, 3000]),
    ("mlp 400, l2 penalty (F = 1)", {"method": "l2"}, [0.01, 0.1, 1, 10]),
    ("mlp 400, 50 epochs (the seed's -e 50)", {"epochs": 50}, [0, 1000, 3000, 10000, 30000]),
]


def grid() -> str:
    """Accuracy of task A after A / after B and of task B, per model and λ (one seed)."""
    tasks = get_scenario(DEFAULTS["tasks"])
    lines = [
        "## λ / model grid (mnist->fashion, bundled data, seed 0)",
        "",
        "How the defaults were chosen: each row is one `run_sequence` run; λ = 0 is plain "
        "training. Everything not listed is `DEFAULTS` (5 epochs per task, batch 64, "
        "empirical Fisher on 1000 samples). `diverged` means partial_fit refused a step.",
        "",
        "| setting | λ | A after A (%) | A after B (%) | A drop | B after B (%) | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, kwargs, lams in GRID:
        cache = TaskACache()
        for lam in lams:
            method = kwargs.get("method", "ewc" if lam else "sgd")
            options = {k: v for k, v in kwargs.items() if k != "method"}
            start = time.perf_counter()
            try:
                h = run_sequence(tasks, method=method, lam=lam, cache=cache, **options)
            except (RuntimeError, FloatingPointError, ValueError) as err:
                lines.append(f"| {label} | {lam:g} | diverged: {str(err)[:60]} | | | | |")
                continue
            R = h.accuracy_matrix
            lines.append(
                f"| {label} | {lam:g} | {100 * R[0, 0]:.1f} | {100 * R[1, 0]:.1f} | "
                f"{100 * (R[0, 0] - R[1, 0]):.1f} | {100 * R[1, 1]:.1f} | "
                f"{time.perf_counter() - start:.0f} |"
            )
            print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


if __name__ == "__main__":
    print(grid() if "--grid" in sys.argv else run())
