"""Peak resident memory of importing ewclab and of the demo, each in a fresh process.

Each measurement runs a small wrapper process that starts the command as its child and
reports ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` (the child's peak RSS; KiB on
Linux), so measurements never mask each other. One torch thread (``OMP_NUM_THREADS=1``),
as in the demo benchmark. Reference point: Binder gives 1-2 GB.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent

WRAPPER = (
    "import json, resource, subprocess, sys; "
    "subprocess.run(json.loads(sys.argv[1]), check=True, capture_output=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)

CASES = [
    ("`import torch` (baseline)", ["-c", "import torch"]),
    ("`import ewclab`", ["-c", "import ewclab"]),
    ("`import ewclab.experiment` (models, Fisher, data)", ["-c", "import ewclab.experiment"]),
    ("`ewclab demo` (no EWC)", ["-m", "ewclab", "demo", "--quiet"]),
    ("`ewclab demo --ewc`", ["-m", "ewclab", "demo", "--quiet", "--ewc"]),
]


def peak_rss_mib(args: list[str]) -> float:
    """Peak RSS in MiB of ``python args...`` run in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", WRAPPER, json.dumps([sys.executable, *args])],
        cwd=ROOT, check=True, capture_output=True, text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    ).stdout
    kib = int(out.strip().splitlines()[-1])
    return kib / 1024 if sys.platform != "darwin" else kib / 2**20  # macOS reports bytes


def run() -> str:
    assert resource.RUSAGE_CHILDREN  # Unix only
    rows = [(label, peak_rss_mib(args)) for label, args in CASES]
    demo = max(mib for label, mib in rows if "demo" in label)
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only"
    lines = [
        "## 6. Peak resident memory",
        "",
        "| process | peak RSS (MiB) |",
        "|---|---|",
        *[f"| {label} | {mib:.0f} |" for label, mib in rows],
        "",
        f"- The demo peaks at {demo:.0f} MiB: "
        + ("fits Binder's 1 GB." if demo < 1024 else "**over Binder's 1 GB**."),
        f"- The demo adds {demo - rows[0][1]:.0f} MiB to `import torch`; the rest is torch "
        f"itself, here its {build} build (torch {torch.__version__}). Binder's environment "
        "installs `pytorch-cpu` instead (not measured here).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
