"""Student notebooks pass the bundled data straight to the learners: no layout glue.

A :class:`~ewclab.data.Task` hands out ``X_train`` / ``X_test`` in the ``(N, 1, H, W)`` layout
``partial_fit``, ``fit``, ``score``, ``predict`` and ``consolidate`` take, so a lesson, an
exercise or the playground never needs ``to_nchw`` (kept for users' own data in other
layouts) nor a hand-added channel axis on ``x_train`` / ``x_test``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(
    [*ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("exercises/source/**/*.ipynb"),
     *ROOT.glob("exercises/release/**/*.ipynb"), ROOT / "app" / "playground.ipynb"]
)
GLUE = re.compile(
    r"to_nchw"                                   # the converter itself (import or call)
    r"|\bx_(?:train|test)\b[^\n]*\[[^\]\n]*None"  # x_train[:n, None]: a channel added by hand
)


def _code(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def test_the_notebooks_are_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in NOTEBOOKS}
    assert "notebooks/02_elastic_weight_consolidation.ipynb" in names
    assert "app/playground.ipynb" in names
    assert any(n.startswith("exercises/source/") for n in names)
    assert any(n.startswith("exercises/release/") for n in names)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_layout_glue(path: Path) -> None:
    found = [line.strip() for cell in _code(path) for line in cell.splitlines()
             if GLUE.search(line)]
    assert not found, (
        f"{path.name} converts the data's layout by hand: {found}; pass task.X_train / "
        "task.X_test, which are already (N, 1, H, W)"
    )


@pytest.mark.parametrize("line, glue", [
    ("from ewclab.data import to_nchw", True),
    ("model.fit(to_nchw(mnist.x_train, 1), mnist.y_train)", True),
    ("model.partial_fit(mnist.x_train[:64, None], mnist.y_train[:64])", True),
    ("X = task.x_test[:, None]", True),
    ("model.fit(mnist.X_train, mnist.y_train)", False),
    ("blank = (task.x_train.reshape(len(task.x_train), -1) == 0).all(axis=0)", False),
])
def test_the_glue_pattern(line: str, glue: bool) -> None:
    assert bool(GLUE.search(line)) is glue
