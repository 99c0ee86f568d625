"""Run every ``benchmarks/bench_*.py`` and rewrite ``benchmarks/RESULTS.md``.

    python benchmarks/run_all.py            # all benchmarks; keeps the λ/model grid section
    python benchmarks/run_all.py --grid     # ... and re-measures the grid (slow, ~30 min)
    python benchmarks/run_all.py --grid-only    # re-measure the grid only, keep the rest
    python benchmarks/run_all.py --only demo,memory   # print some sections, write nothing

Each ``bench_*.py`` exposes ``run() -> str``, a markdown section measured in one run. A
benchmark that is missing or fails gets a note in its place, never a crash.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import re
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

RESULTS = HERE / "RESULTS.md"
#: The benchmarks in report order (any other bench_*.py found is run after these).
EXPECTED = ["step", "fisher", "demo", "roofline", "memory", "defaults", "threads", "lessons",
            "models"]
GRID_START, GRID_END = "<!-- grid:start -->", "<!-- grid:end -->"


def _ram() -> str:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return "RAM unknown"
    return f"{pages * size / 2**30:.1f} GiB RAM"


def load() -> str:
    """The 1/5/15-minute load averages, or a note where the system has none."""
    try:
        return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "load average unknown"


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine(load_at_start: str) -> str:
    """Markdown lines describing this machine, its load and the software."""
    import torch

    cpu = cpu_model()
    return "\n".join([
        "## Machine",
        "",
        f"- CPU: {cpu}, {os.cpu_count()} logical cores visible "
        f"({len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'} "
        f"usable), {_ram()}; torch uses {torch.get_num_threads()} threads",
        f"- torch {torch.__version__}, numpy {__import__('numpy').__version__}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}",
        f"- measured {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}; {load_at_start} "
        f"at the start, {load()} at the end",
    ])


def bench_names() -> list[str]:
    found = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    return [n for n in EXPECTED if n in found] + [n for n in found if n not in EXPECTED]


def run_one(name: str) -> str:
    """The section of ``bench_<name>.py``, or a note saying why there is none."""
    if not (HERE / f"bench_{name}.py").exists():
        return f"## {name}\n\nSkipped: `benchmarks/bench_{name}.py` does not exist yet."
    start = time.perf_counter()
    try:
        section = importlib.import_module(f"bench_{name}").run().strip()
    except Exception:  # a broken benchmark must not hide the others
        tail = traceback.format_exc().strip().splitlines()[-1]
        return f"## {name}\n\nFailed: `{tail}`"
    seconds = time.perf_counter() - start
    print(f"bench_{name}: {seconds:.0f} s", file=sys.stderr)
    return f"{section}\n\n_(bench_{name}.py ran in {seconds:.0f} s)_"


def grid_section(regenerate: bool) -> str:
    """The λ/model grid: re-measured with ``--grid``, else kept from RESULTS.md."""
    if regenerate:
        import bench_demo

        body = bench_demo.grid().strip()
    else:
        old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
        match = re.search(re.escape(GRID_START) + r"\n(.*?)\n" + re.escape(GRID_END), old, re.S)
        body = match.group(1).strip() if match else (
            "## λ / model grid\n\nNot measured yet: run `python benchmarks/run_all.py --grid`."
        )
    return f"{GRID_START}\n{body}\n{GRID_END}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", action="store_true", help="re-measure the λ/model grid")
    parser.add_argument("--grid-only", action="store_true",
                        help="re-measure the grid and keep every other section of RESULTS.md")
    parser.add_argument("--only", help="comma-separated benchmark names; print, do not write")
    args = parser.parse_args(argv)
    if args.grid_only:
        old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results"
        new = grid_section(regenerate=True)
        pattern = re.escape(GRID_START) + r".*?" + re.escape(GRID_END)
        text = (re.sub(pattern, lambda _: new, old, flags=re.S) if re.search(pattern, old, re.S)
                else old.rstrip() + "\n\n" + new)
        RESULTS.write_text(text.rstrip() + "\n", encoding="utf-8")
        print(f"wrote the grid into {RESULTS}", file=sys.stderr)
        return 0
    if args.only:
        for name in args.only.split(","):
            print(run_one(name.strip()), end="\n\n")
        return 0
    at_start = load()
    names = bench_names() + [n for n in EXPECTED if n not in bench_names()]
    sections = [run_one(name) for name in names]
    text = "\n\n".join([
        "# Benchmark results",
        "Written by `make bench` (`python benchmarks/run_all.py`); every number in a "
        "section comes from one run on the machine below. Targets are stated per section. "
        "Seconds depend on the machine and on whatever else runs on it (see the load "
        "averages): compare the ratios, which are measured side by side in the same run.",
        machine(at_start),
        *sections,
        grid_section(args.grid),
    ])
    RESULTS.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
