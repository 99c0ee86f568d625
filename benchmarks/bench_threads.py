"""``ewclab demo`` (default settings) with 1 and 2 torch threads, on an idle and a busy CPU.

Target: the default of ``--threads`` is the setting that is faster when another process
keeps a core busy and not much slower (≤ 1.2×) when the machine is idle. Each command is a
new process (``python -m ewclab demo --quiet --threads N``); runs alternate 1 and 2 threads
so a change in the machine's load hits both. "Busy": one ``yes > /dev/null`` loop started
here (and stopped by its process id) keeps one core at 100 % while the demo runs.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 3
THREADS = (1, 2)


def _demo_seconds(threads: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ewclab", "demo", "--quiet", "--threads",
                    str(threads)], cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def _measure() -> dict[int, list[float]]:
    times: dict[int, list[float]] = {n: [] for n in THREADS}
    for _ in range(REPEATS):
        for n in THREADS:
            times[n].append(_demo_seconds(n))
    return times


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def run() -> str:
    load_idle = _load()
    idle = _measure()
    busy_loop = subprocess.Popen(["yes"], stdout=subprocess.DEVNULL)
    try:
        time.sleep(1)
        load_busy = _load()
        busy = _measure()
    finally:
        busy_loop.kill()
        busy_loop.wait()
    med = {(k, n): statistics.median(t[n]) for k, t in (("idle", idle), ("busy", busy))
           for n in THREADS}
    rows = [
        f"| {k} | {n} | {med[k, n]:.1f} | {', '.join(f'{x:.1f}' for x in t[n])} |"
        for k, t in (("idle", idle), ("busy", busy)) for n in THREADS
    ]
    one_busy, two_busy = med["busy", 1], med["busy", 2]
    one_idle, two_idle = med["idle", 1], med["idle", 2]
    return "\n".join([
        "## 8. Torch threads for `ewclab demo` (the default of `--threads`)",
        "",
        f"`ewclab demo --quiet --threads N` (mnist->fashion, MLP, no EWC, defaults), each a "
        f"new process, {REPEATS} alternating runs per row; seconds are wall time, medians. "
        f"\"idle\": nothing of ours running beside it (load average {load_idle} before; other "
        f"people's jobs shared this CPU, so idle is only as idle as the machine was); "
        f"\"busy\": a `yes > /dev/null` loop on one core (load average {load_busy} when it "
        "started).",
        "",
        "| machine | threads | seconds (median) | runs |",
        "|---|---|---|---|",
        *rows,
        "",
        f"- busy: 1 thread {one_busy:.1f} s vs 2 threads {two_busy:.1f} s "
        f"(2 threads take {two_busy / one_busy:.2f}× as long).",
        f"- idle: 1 thread {one_idle:.1f} s vs 2 threads {two_idle:.1f} s "
        f"(1 thread takes {one_idle / two_idle:.2f}× as long).",
    ])


if __name__ == "__main__":
    print(run())
