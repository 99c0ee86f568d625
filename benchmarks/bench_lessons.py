"""Each lesson as a kernel runs it: peak and held memory, and the cost of torch's threads.

Every lesson in ``notebooks/`` runs top to bottom in its own fresh kernel (nbclient, a
temporary working folder, one lesson at a time), one torch thread as ``make lab`` and
Binder start kernels. After each cell the kernel's ``/proc/<pid>/status`` gives its
resident memory (VmRSS) and its peak so far (VmHWM), so the table shows the peak, what an
open tab keeps holding at the end, and the cell that raised the peak most. Binder gives
2 GB at most, shared by every kernel a student leaves open.

Then one lesson is timed with one torch thread and with torch's default (one per core),
on the machine as it is and with a busy-loop process per core beside it (a busy or shared
machine). Linux only (``/proc``).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TIMED = "01_catastrophic_forgetting.ipynb"
CELL_TIMEOUT_S = 1200
MIB = 1024  # /proc/<pid>/status reports kB


def _memory(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MiB."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status)
    return tuple(int(fields[key].split()[0]) / MIB for key in ("VmRSS", "VmHWM"))


def _kernel_env(threads: int | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.pop("MPLBACKEND", None)  # the inline backend, as a student's kernel has
    if threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


def run_lesson(path: Path | None, threads: int | None = 1) -> dict:
    """Run one lesson in a fresh kernel; its seconds and memory after each code cell.

    ``path=None`` runs a one-cell notebook that imports torch: the floor under every lesson.
    """
    import nbformat
    from nbclient import NotebookClient

    if path is None:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import torch")])
    else:
        nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as folder:
        client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                resources={"metadata": {"path": folder}})  # fmt: skip
        with client.setup_kernel(env=_kernel_env(threads), cwd=folder):
            pid = client.km.provisioner.process.pid
            cells, start = [], time.perf_counter()
            for index, cell in enumerate(nb.cells):
                if cell.cell_type == "code":
                    client.execute_cell(cell, index)
                    first = next((s for s in cell.source.splitlines() if s.strip()), "")
                    cells.append((index, first, *_memory(pid)))
            seconds = time.perf_counter() - start
    return {"seconds": seconds, "cells": cells}


def _burn() -> None:
    while True:
        pass


def timed(threads: int | None, busy: bool) -> tuple[float, str]:
    """Seconds to run the timed lesson, and the load average when it ended."""
    burners = []
    if busy:
        burners = [multiprocessing.Process(target=_burn, daemon=True)
                   for _ in range(os.cpu_count() or 1)]  # fmt: skip
        for process in burners:
            process.start()
    try:
        seconds = run_lesson(ROOT / "notebooks" / TIMED, threads)["seconds"]
    finally:
        for process in burners:
            process.terminate()
            process.join()
    return seconds, ", ".join(f"{x:.1f}" for x in os.getloadavg())


def _biggest_rise(cells: list) -> str:
    """The cell after the first (the imports: torch and all) that raised the peak most."""
    rises = [(hwm - cells[i][3], index, first)
             for i, (index, first, _, hwm) in enumerate(cells[1:])]  # fmt: skip
    rise, index, first = max(rises)
    return f"cell {index} (+{rise:.0f}): `{first[:40].replace('|', '/')}`"


def run() -> str:
    assert sys.platform == "linux", "reads /proc"
    import torch

    floor = run_lesson(None)["cells"][-1][3]
    rows = [f"| (a kernel that only imports torch) | {floor:.0f} | | | | |"]
    for path in LESSONS:
        out = run_lesson(path)
        cells = out["cells"]
        print(path.stem, [(i, round(rss), round(hwm)) for i, _, rss, hwm in cells],
              file=sys.stderr)  # fmt: skip
        peak, held = cells[-1][3], cells[-1][2]
        rows.append(f"| {path.stem} | {peak:.0f} | {held:.0f} | {peak - cells[0][3]:.0f} | "
                    f"{_biggest_rise(cells)} | {out['seconds']:.0f} |")  # fmt: skip
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only"
    cores = os.cpu_count()
    times = [(t, busy, *timed(t, busy)) for busy in (False, True) for t in (1, None)]
    lines = [
        "## 9. Lesson kernels: memory and torch threads",
        "",
        "Each lesson run top to bottom in a fresh kernel (nbclient), one at a time, one torch "
        "thread; memory from the kernel's `/proc/<pid>/status` after each cell (MiB). "
        "Target: two lessons left open fit Binder's 2 GB. The first row is the floor under "
        f"every lesson: torch itself, here its {build} build (torch {torch.__version__}).",
        "",
        "| lesson | peak RSS | RSS at the end | peak above the imports cell "
        "| cell after the imports that raised the peak most | seconds |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"`{TIMED}` run top to bottom, torch threads 1 vs torch's default ({cores} here), on "
        f"the machine as it is and with {cores} busy-loop processes beside it:",
        "",
        "| torch threads | machine | seconds | load average at the end |",
        "|---|---|---|---|",
        *[f"| {t or f'default ({cores})'} | {'+ busy loops' if busy else 'as it is'} | "
          f"{s:.0f} | {load} |" for t, busy, s, load in times],  # fmt: skip
        "",
        "The widgets' runs (Run in the playground) are not pressed here; each adds a model "
        "and its history while the kernel lives.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
