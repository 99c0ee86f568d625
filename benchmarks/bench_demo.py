"""The mnist->fashion demo end to end, the task-A cache, and (``grid()``) the λ/model grid.

Targets: a λ change with the task-A cache costs <= 0.6x a full run; each seed command
(``ewclab demo -e 50`` with and without ``--ewc``) takes about two minutes or less on 2
cores; the default demo and the seed commands teach the lesson (task A drops >= 30 points
without EWC, <= 10 with it, task B within 10 points of the run without EWC).

Everything runs on one torch thread (the seed commands as new processes with
``OMP_NUM_THREADS=1``): on a CPU shared with other jobs, two OpenMP threads that wait for
each other were many times slower than one; one thread is also what a 1-CPU Binder gives.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ewclab.experiment import DEFAULTS, TaskACache, run_sequence
from ewclab.scenarios import get_scenario

ROOT = Path(__file__).resolve().parent.parent
TARGET_CACHE, TARGET_SECONDS = 0.6, 120
REPEATS = 3  # full run / cached run pairs


def _timed(**kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    history = run_sequence(**kwargs)
    return time.perf_counter() - start, history


def lesson(R: np.ndarray, E: np.ndarray) -> bool:
    """The demo's lesson from the accuracy matrices without (R) and with (E) EWC."""
    return bool(
        R[0, 0] - R[1, 0] >= 0.30 and E[0, 0] - E[1, 0] <= 0.10 and E[1, 1] >= R[1, 1] - 0.10
    )


def _cells(R: np.ndarray) -> str:
    return (f"{100 * R[0, 0]:.1f} | {100 * R[1, 0]:.1f} | {100 * (R[0, 0] - R[1, 0]):.1f} | "
            f"{100 * R[1, 1]:.1f}")


def _command(args: list[str]) -> tuple[float, float, np.ndarray]:
    """(wall seconds, CPU seconds, accuracy matrix) of ``ewclab demo ARGS`` in a new process."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "run.json"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ewclab", "demo", "--quiet", "--json", str(out),
                        *args], cwd=ROOT, env=env, check=True, capture_output=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        R = np.array(json.loads(out.read_text())["accuracy_matrix"])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, R


def run() -> str:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run()
    finally:
        torch.set_num_threads(threads)


def _run() -> str:
    tasks = get_scenario(DEFAULTS["tasks"])
    t_sgd, sgd = _timed(tasks=tasks, method="sgd")
    cache, lam2 = TaskACache(), DEFAULTS["lam"] / 2
    full_times, hit_times = [], []
    for _ in range(REPEATS):  # alternate, so a change in the machine's load hits both
        cache.clear()
        t_full, ewc = _timed(tasks=tasks, method="ewc", cache=cache)
        t_hit, hit = _timed(tasks=tasks, method="ewc", lam=lam2, cache=cache)
        full_times.append(t_full)
        hit_times.append(t_hit)
    t_full, t_hit = statistics.median(full_times), statistics.median(hit_times)
    ratio = t_hit / t_full
    e50 = {ewc_flag: _command(["-e", "50", *(["--ewc"] if ewc_flag else [])])
           for ewc_flag in (False, True)}

    d = DEFAULTS
    R, E = sgd.accuracy_matrix, ewc.accuracy_matrix
    R50, E50 = e50[False][2], e50[True][2]
    slowest = max(wall for wall, _, _ in e50.values())
    header = "| A after A (%) | A after B (%) | A drop (points) | B after B (%) |"
    return "\n".join([
        "## 4. The demo end to end, and the task-A cache",
        "",
        f"Defaults: {d['tasks']}, {d['model']} (width {d['width']}), {d['optimizer']} "
        f"lr {d['lr']} (momentum 0.9), batch {d['batch_size']}, {d['epochs']} epochs per task, "
        f"λ = {d['lam']:g}, {d['fisher']} Fisher on {d['fisher_samples']} samples, seed "
        f"{d['seed']}; bundled data (4000 train / 1000 test per task); one torch thread.",
        "",
        f"| run | seconds {header}",
        "|---|---|---|---|---|---|",
        f"| `run_sequence` sgd (no EWC) | {t_sgd:.1f} | {_cells(R)} |",
        f"| `run_sequence` ewc (full run, fills the cache) | {t_full:.1f} | {_cells(E)} |",
        f"| ewc, λ = {lam2:g}, task A from the cache | {t_hit:.1f} | "
        f"{_cells(hit.accuracy_matrix)} |",
        "",
        f"Full and cached runs alternate {REPEATS} times; seconds are medians (full: "
        f"{', '.join(f'{t:.1f}' for t in full_times)}; cached: "
        f"{', '.join(f'{t:.1f}' for t in hit_times)}).",
        "",
        f"- λ change with the cache / full run: **{ratio:.2f}×** (target ≤ {TARGET_CACHE}×): "
        + ("met." if ratio <= TARGET_CACHE else
           "missed: the cached run still trains task B, whose steps carry the EWC penalty "
           "(see section 2), evaluates both tasks and computes task B's Fisher."),
        "- lesson with the defaults (A drop ≥ 30 points without EWC, ≤ 10 with it, B within "
        "10 points): " + ("holds." if lesson(R, E) else "**does not hold**."),
        "",
        "The seed's two commands, each a new process with one torch thread:",
        "",
        f"| command | wall seconds | CPU seconds {header}",
        "|---|---|---|---|---|---|---|",
        f"| `ewclab demo -e 50 --quiet` | {e50[False][0]:.0f} | {e50[False][1]:.0f} | "
        f"{_cells(R50)} |",
        f"| `ewclab demo -e 50 --ewc --quiet` | {e50[True][0]:.0f} | {e50[True][1]:.0f} | "
        f"{_cells(E50)} |",
        "",
        f"- slowest seed command: {slowest:.0f} s wall (target about {TARGET_SECONDS} s or less "
        "on 2 cores): " + ("met." if slowest <= 1.1 * TARGET_SECONDS else
                            "missed on this (shared) machine; see the CPU seconds."),
        "- lesson at `-e 50`: " + ("holds." if lesson(R50, E50) else "**does not hold**."),
    ])


# -- the λ / model grid (slow: `python benchmarks/run_all.py --grid`) --------------------------

GRID = [
    # (label, run_sequence keywords, λ values); every row of one label shares task A
    ("mlp 400, exact Fisher (default)", {}, [0, 300, 1000, 2000, 3000, 5000]),
    ("same, seed 1", {"seed": 1}, [0, 1000, 2000, 3000, 5000]),
    ("mlp 400, empirical Fisher", {"fisher": "empirical"}, [0, 1000, 3000, 10000]),
    ("mlp 100", {"width": 100}, [0, 1000, 3000]),
    ("mlp 400, adam lr 0.001", {"optimizer": "adam", "lr": 1e-3}, [0, 100, 1000, 10000]),
    ("testnet", {"model": "testnet"}, [0, 100, 300, 1000, 3000]),
    ("mlp 400, l2 penalty (F = 1)", {"method": "l2"}, [0.01, 0.1, 1, 10]),
    ("mlp 400, 50 epochs (the seed's -e 50)", {"epochs": 50}, [0, 1000, 3000, 10000]),
    ("mlp 400, 50 epochs, empirical Fisher", {"epochs": 50, "fisher": "empirical"},
     [3000, 10000, 30000]),
]


SCENARIOS = [
    # (scenario, λ values) for the other task sequences of `ewclab demo --tasks`
    ("fashion->mnist", [0, 300, 1000, 2000]),
    ("split", [0, 300, 1000, 2000, 3000]),
    ("permuted:5", [0, 100, 300, 1000]),
]


def _grid_run(tasks, lam, cache, **kwargs):
    """(history or None if diverged, seconds) of one grid run."""
    method = kwargs.pop("method", "ewc" if lam else "sgd")
    start = time.perf_counter()
    try:
        h = run_sequence(tasks, method=method, lam=lam, cache=cache, **kwargs)
    except FloatingPointError:
        h = None
    return h, time.perf_counter() - start


def _max_fisher(h) -> float:
    """Largest entry of Σ F over the tasks before the last: the penalty's curvature / λ
    while the last task trains (with one term per task)."""
    earlier = [h.fisher[t] for t in h.tasks[:-1]]
    return max(float(sum(F[name] for F in earlier).max()) for name in earlier[0])


def grid() -> str:
    """Accuracy of task A after A / after B and of task B, per model and λ (one thread)."""
    from ewclab.metrics import average_accuracy, backward_transfer

    torch.set_num_threads(1)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    tasks = get_scenario(DEFAULTS["tasks"])
    lines = [
        f"## λ / model grid ({DEFAULTS['tasks']}, bundled data, seed 0 unless stated)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} (load average {load} at the start), one "
        "torch thread; `python benchmarks/run_all.py --grid-only` re-measures it. How the "
        "defaults were chosen: each row is one `run_sequence` run; λ = 0 is plain training. "
        "Everything not listed is `DEFAULTS` (5 epochs per task, batch 64, SGD lr 0.01 with "
        f"momentum 0.9, {DEFAULTS['fisher']} Fisher on 1000 samples; default λ = "
        f"{DEFAULTS['lam']:g}). `diverged` means partial_fit refused a step. max F: the "
        "largest entry of task A's Fisher (for longer sequences: of the sum of the Fishers "
        "in the penalty while the last task trains); SGD with momentum β stays stable on the "
        "penalty only while lr·λ·max F < 2(1+β) = 3.8, i.e. λ < 3.8 / (lr · max F).",
        "",
        "| setting | λ | A after A (%) | A after B (%) | A drop | B after B (%) | max F | "
        "seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, kwargs, lams in GRID:
        cache = TaskACache()
        for lam in lams:
            h, seconds = _grid_run(tasks, lam, cache, **kwargs)
            lines.append(
                f"| {label} | {lam:g} | diverged | | | | | {seconds:.0f} |" if h is None else
                f"| {label} | {lam:g} | {_cells(h.accuracy_matrix)} | {_max_fisher(h):.2g} | "
                f"{seconds:.0f} |"
            )
            print(lines[-1], file=sys.stderr, flush=True)
    lines += [
        "",
        "The other task sequences of `ewclab demo --tasks` (EWC, defaults otherwise): average "
        "accuracy at the end (ACC) and backward transfer (BWT, negative = forgetting).",
        "",
        "| tasks | λ | ACC (%) | BWT (points) | max F | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for spec, lams in SCENARIOS:
        cache, scenario = TaskACache(), get_scenario(spec)
        for lam in lams:
            h, seconds = _grid_run(scenario, lam, cache)
            if h is None:
                lines.append(f"| {spec} | {lam:g} | diverged | | | {seconds:.0f} |")
            else:
                R = h.accuracy_matrix
                lines.append(
                    f"| {spec} | {lam:g} | {100 * average_accuracy(R):.1f} | "
                    f"{100 * backward_transfer(R):+.1f} | {_max_fisher(h):.2g} | {seconds:.0f} |"
                )
            print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


if __name__ == "__main__":
    print(grid() if "--grid" in sys.argv else run())
