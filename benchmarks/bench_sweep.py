"""λ sweeps side by side: wall time of K λ against one, the playground's answer times, and
the peak memory of an 8-copy sweep.

    python benchmarks/bench_sweep.py          # prints the RESULTS.md section

Everything runs with one torch thread (as ``ewclab demo``, the lessons and Binder do), in
this one process except the memory rows (a fresh process each, so the peak is the run's).
Ratios are measured in this one run, one after another, on the machine as it is.

1. The default demo (mnist->fashion, MLP, EWC), task A taken from the cache: one λ with
   ``run_sequence`` against ``sweep`` with K = 2, 4, 8, 16 λ (and K serial runs for 8),
   then the same for TestNet at its defaults.
2. One training step: a learner's ``partial_fit`` against ``SideBySide.partial_fit`` of K
   copies, and a hand-written stacked MLP (``torch.baddbmm``) — the measurement behind
   vmap as the one path for every model.
3. The playground (``EWCPlayground``) after a first run has cached task A: seconds from
   Run to the first picture and to the finished run, per model it offers.
4. Peak resident memory of one λ and of an 8-λ sweep of the default demo.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LAMS_8 = [0.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 2000.0, 3000.0]


def _lams(k: int, top: float) -> list[float]:
    """k λ from 0 up to ``top`` (log-spaced above 0)."""
    import numpy as np

    return [0.0] + [float(x) for x in np.geomspace(top / 300, top, k - 1)] if k > 1 else [top]


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def sweep_ratios(model: str, ks: tuple[int, ...], serial_k: int | None) -> list[tuple]:
    """Rows (what, K, seconds, ratio to one λ) for ``model`` at its defaults, task A cached."""
    from ewclab.experiment import TaskACache, run_sequence, sweep
    from ewclab.scenarios import get_scenario
    from ewclab.settings import defaults

    tasks = get_scenario("mnist->fashion")
    top = defaults("mnist->fashion", model, "ewc").lam
    cache = TaskACache()
    run_sequence(tasks, model, "ewc", top, cache=cache)  # task A into the cache
    one = min(_seconds(lambda: run_sequence(tasks, model, "ewc", top, cache=cache))
              for _ in range(2))
    rows = [("run_sequence, one λ", 1, one, 1.0)]
    for k in ks:
        lams = _lams(k, top)
        t = _seconds(lambda lams=lams: sweep(lams, tasks, model, "ewc", cache=cache))
        rows.append((f"sweep, {k} λ side by side", k, t, t / one))
    if serial_k:
        lams = _lams(serial_k, top)
        t = _seconds(lambda: [run_sequence(tasks, model, "ewc", lam, cache=cache)
                              for lam in lams])
        rows.append((f"run_sequence × {serial_k}, one after another", serial_k, t, t / one))
    return rows


def step_times(ks: tuple[int, ...]) -> list[tuple]:
    """Rows (K, one partial_fit, K serial, SideBySide, vmap CE only, baddbmm CE only), ms,
    for the MLP."""
    import torch

    from ewclab.fisher import fisher_diagonal
    from ewclab.models import MLP

    g = torch.Generator().manual_seed(0)
    X, y = torch.rand(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g)
    base = MLP(seed=0, ewc_lambda=0.0)
    base.partial_fit(X, y)
    fisher = fisher_diagonal(base, X, y)

    def copies(k: int) -> list:
        out = []
        for lam in _lams(k, 2000.0):
            c = copy.deepcopy(base)
            c.ewc_lambda = lam
            c.ewc.add_task(fisher)
            out.append(c)
        return out

    def ms(fn, n: int = 20) -> float:
        for _ in range(3):
            fn()
        best = min(_seconds(lambda: [fn() for _ in range(n)]) for _ in range(3))
        return 1000 * best / n

    return [_step_row(k, copies, X, y, ms) for k in ks]


def _step_row(k: int, copies, X, y, ms) -> tuple:
    import torch
    import torch.nn.functional as F

    from ewclab.side_by_side import SideBySide

    learners = copies(k)
    side = SideBySide(copies(k))
    stacked = {n: t.detach().clone().requires_grad_() for n, t in side.theta.items()}
    opt = torch.optim.SGD(list(stacked.values()), lr=0.01, momentum=0.9)
    layers = [(stacked[f"net.{i}.weight"], stacked[f"net.{i}.bias"]) for i in (1, 3, 5)]

    def vmap_step() -> None:  # cross-entropy only, as SideBySide runs the network
        opt.zero_grad()
        side._loss(stacked, X, y).sum().backward()
        opt.step()

    def baddbmm_step() -> None:  # cross-entropy only: a lower bound of a full step
        opt.zero_grad()
        h = X.flatten(1).expand(k, -1, -1)  # (K, N, 784)
        for j, (w, b) in enumerate(layers):
            h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))  # (K, N, out)
            h = h.relu() if j < 2 else h
        loss = F.cross_entropy(h.reshape(-1, 10), y.repeat(k), reduction="none")  # (K·N,)
        loss.view(k, -1).mean(1).sum().backward()
        opt.step()

    return (k, ms(lambda: learners[0].partial_fit(X, y)),
            ms(lambda: [m.partial_fit(X, y) for m in learners]),
            ms(lambda: side.partial_fit(X, y)), ms(vmap_step), ms(baddbmm_step))


def playground_times(models: tuple[str, ...]) -> list[tuple]:
    """Rows (model, first run s, first picture s, finished s) after task A is cached."""
    return [_playground_row(model) for model in models]


def _playground_row(model: str) -> tuple:
    from ewclab.widgets import EWCPlayground

    pg = EWCPlayground(model=model)
    start = time.perf_counter()
    pg.run()
    pg.wait()
    first_run = time.perf_counter() - start
    shown = threading.Event()
    pg.plot.observe(lambda _: shown.set(), names="outputs")
    pg.lam_slider.value = pg.lam_slider.value / 2  # a new λ: task B only
    start = time.perf_counter()
    pg.run_button.click()
    shown.wait()
    picture = time.perf_counter() - start
    pg.wait()
    return (model, first_run, picture, time.perf_counter() - start)


_MEMORY_CHILD = """
import resource, sys, torch
torch.set_num_threads(1)
from ewclab.experiment import run_sequence, sweep
lams = [float(x) for x in sys.argv[1].split(",")] if sys.argv[1] else []
if len(lams) == 1:
    run_sequence("mnist->fashion", lam=lams[0])
elif lams:
    sweep(lams, "mnist->fashion")
else:
    from ewclab.scenarios import get_scenario
    get_scenario("mnist->fashion")
for line in open("/proc/self/status"):  # VmHWM: this process's peak (ru_maxrss would
    if line.startswith("VmHWM"):         # carry the parent's peak over exec on Linux)
        print(line.split()[1])
"""


def peak_memory_mib(lams: list[float]) -> float:
    """Peak resident memory (MiB, VmHWM) of a fresh process running the default demo at
    ``lams`` (none: import and load the data only; one: run_sequence; more: sweep)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, ",".join(map(str, lams))],
                         capture_output=True, text=True, check=True, env=env, cwd=ROOT)
    return int(out.stdout.split()[-1]) / 1024  # VmHWM is in kB


def run() -> str:
    """Measure everything; return the markdown section."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        mlp = sweep_ratios("mlp", (2, 4, 8, 16), serial_k=8)
        testnet = sweep_ratios("testnet", (8,), serial_k=None)
        steps = step_times((1, 2, 4, 8, 16))
        playground = playground_times(("mlp", "testnet", "alexnet"))
        memory = [("import + data only", peak_memory_mib([])),
                  ("run_sequence, one λ", peak_memory_mib([2000.0])),
                  ("sweep, 8 λ", peak_memory_mib(LAMS_8))]
    finally:
        torch.set_num_threads(threads)
    lines = [
        "## 11. λ sweeps side by side (`experiment.sweep`, `ewclab.side_by_side`)",
        "",
        "`python benchmarks/bench_sweep.py`, one torch thread, measured in one run. The "
        "default demo (mnist->fashion, EWC, bundled data), task A from the cache (trained "
        "once before timing), so every row trains task B only: 5 epochs, 313 steps, 20 "
        "evaluations of both test sets (1000 images each) and the Fisher of task B per λ.",
        "",
        "| model | what | K | seconds | ratio to one λ |",
        "|---|---|---:|---:|---:|",
    ]
    for model, rows in (("mlp", mlp), ("testnet", testnet)):
        lines += [f"| {model} | {what} | {k} | {t:.1f} | {r:.2f} |" for what, k, t, r in rows]
    lines += [
        "",
        "One training step of the MLP (784-400-400-10, batch 64, one EWC term), best of 3 × "
        "20 steps, ms:",
        "",
        "| K | one partial_fit | K partial_fit | SideBySide.partial_fit | vmap, CE only | "
        "stacked baddbmm, CE only |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {k} | {a:.2f} | {b:.2f} | {c:.2f} | {d:.2f} | {e:.2f} |"
              for k, a, b, c, d, e in steps]
    lines += [
        "",
        "The playground after its first run (task A cached), default λ halved, seconds from "
        "Run:",
        "",
        "| model | first run (task A + B) | first picture | finished |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {m} | {a:.1f} | {b:.2f} | {c:.2f} |" for m, a, b, c in playground]
    lines += [
        "",
        "Peak resident memory of a fresh process (VmHWM), default demo:",
        "",
        "| run | peak MiB |",
        "|---|---:|",
    ]
    lines += [f"| {what} | {mib:.0f} |" for what, mib in memory]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run())
