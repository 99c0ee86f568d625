"""The nbgrader course in ``exercises/`` grades what it should: a check CI runs.

In a temporary copy of the course (the repository is never written), nbgrader generates
the student versions of every assignment and autogrades three submissions of each:

- the source notebooks, solutions in place: full marks;
- the untouched student versions: zero on every graded cell;
- a plausible wrong answer (the penalty without its ½, the squared batch gradient for
  the empirical Fisher, forgetting computed as −BWT): exactly the cells that test the
  wrong function lose their points, and their error output says what is wrong.

It also checks that the student versions committed in ``exercises/release/`` (what a
student opens on Binder or a laptop) are what nbgrader generates from ``source/``: they
are generated, never hand-edited.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nbgrader.api import Gradebook  # the test extra: CI must grade, never skip

REPO = Path(__file__).resolve().parents[1]
COURSE = REPO / "exercises"
ASSIGNMENTS = ("ewc_penalty", "fisher_diagonal", "metrics_and_lambda")
GRADE_TIMEOUT_S = 600  # a bound for a stuck kernel, not a speed check

# assignment -> (solution-cell id, text in it, its replacement, the cells that must fail,
#                a message the first failing cell must show)
WRONG = {
    "ewc_penalty": (
        "ewc_penalty",
        "return 0.5 * lam * total",
        "return lam * total",
        {"test_ewc_penalty"},
        "the ½ is missing",
    ),
    "fisher_diagonal": (
        "empirical_fisher",
        None,  # the whole cell: the loss of the whole batch, one backward pass, squared
        """def empirical_fisher(model, X, y):
    model.eval()
    names, params = zip(*model.named_parameters(), strict=True)
    loss = F.log_softmax(model(X), dim=1).gather(1, y[:, None]).mean()
    grads = torch.autograd.grad(loss, params)
    return {n: g**2 for n, g in zip(names, grads, strict=True)}""",
        {"test_empirical_fisher"},
        "square of the batch gradient",
    ),
    "metrics_and_lambda": (
        "metrics",
        "R[j : T - 1, j].max() - R[T - 1, j]",
        "R[j, j] - R[T - 1, j]",
        {"test_forgetting"},
        "(= -BWT)",
    ),
}
STUDENTS = ("solution", "untouched", "wrong")


def _env(home: Path) -> dict[str, str]:
    """This venv's tools first on PATH (nbgrader runs ``alembic``), Jupyter folders in
    ``home`` so no user config or kernel spec leaks in, one torch thread per kernel."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    for key, name in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                      ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")):  # fmt: skip
        (home / name).mkdir(parents=True, exist_ok=True)
        env[key] = str(home / name)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = "1"
    env.pop("MPLBACKEND", None)
    return env


def _nbgrader(course: Path, env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=course, env=env, capture_output=True, text=True, timeout=GRADE_TIMEOUT_S,
    )  # fmt: skip
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stderr[-4000:]}"


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _wrong_version(source: Path, target: Path, assignment: str) -> None:
    cell_id, old, new, _, _ = WRONG[assignment]
    notebook = json.loads(source.read_text())
    (cell,) = [c for c in notebook["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id")
               == cell_id]  # fmt: skip
    text = "".join(cell["source"])
    if old is None:
        text = new
    else:
        assert text.count(old) == 1, f"{assignment}: {old!r} is not in cell {cell_id} once"
        text = text.replace(old, new)
    cell["source"] = text
    target.write_text(json.dumps(notebook, indent=1))


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[tuple[str, str], dict]]:
    """A temporary course: generated, three students submitted, autograded.

    Returns the course folder and {(assignment, student): {grade id: score}}, plus the
    maximum scores under the student ``"max"``.
    """
    course = tmp_path_factory.mktemp("course")
    env = _env(tmp_path_factory.mktemp("jupyter-home"))
    shutil.copy(COURSE / "nbgrader_config.py", course)
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    shutil.copytree(COURSE / "source", course / "source", ignore=ignore)
    _nbgrader(course, env, "generate_assignment", "*")
    for assignment in ASSIGNMENTS:
        name = f"{assignment}.ipynb"
        submitted = {s: course / "submitted" / s / assignment for s in STUDENTS}
        shutil.copytree(course / "source" / assignment, submitted["solution"], ignore=ignore)
        shutil.copytree(course / "release" / assignment, submitted["untouched"])
        shutil.copytree(course / "release" / assignment, submitted["wrong"])
        _wrong_version(course / "source" / assignment / name, submitted["wrong"] / name,
                       assignment)  # fmt: skip
    _nbgrader(course, env, "autograde", "*")
    scores: dict[tuple[str, str], dict] = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for assignment in ASSIGNMENTS:
            for student in STUDENTS:
                notebook = gradebook.find_submission_notebook(assignment, assignment, student)
                scores[assignment, student] = {g.name: g.score for g in notebook.grades}
                scores[assignment, "max"] = {g.name: g.max_score for g in notebook.grades}
    return course, scores


def _errors(course: Path, assignment: str, student: str) -> dict[str, str]:
    """Error outputs of the autograded notebook: {grade id: "Name: message"}."""
    path = course / "autograded" / student / assignment / f"{assignment}.ipynb"
    errors = {}
    for cell in _cells(path):
        for out in cell.get("outputs", []):
            if out["output_type"] == "error":
                grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id", cell.get("id"))
                errors[grade_id] = f"{out['ename']}: {out['evalue']}"
    return errors


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_each_assignment_has_solutions_visible_and_hidden_tests(assignment: str) -> None:
    cells = _cells(COURSE / "source" / assignment / f"{assignment}.ipynb")
    meta = [c["metadata"].get("nbgrader", {}) for c in cells]
    sources = ["".join(c["source"]) for c in cells]
    solutions = [s for s, m in zip(sources, meta, strict=True) if m.get("solution")]
    graded_tests = [s for s, m in zip(sources, meta, strict=True) if m.get("grade")]
    assert solutions and all("### BEGIN SOLUTION" in s and "### END SOLUTION" in s
                             for s in solutions)  # fmt: skip
    assert len(graded_tests) >= 2
    for test in graded_tests:
        visible = test.split("### BEGIN HIDDEN TESTS")[0]
        assert "assert" in visible or "check_" in visible, f"no visible test in:\n{test}"
        assert "### BEGIN HIDDEN TESTS" in test and "### END HIDDEN TESTS" in test


def test_the_solution_gets_full_marks(graded) -> None:
    course, scores = graded
    for assignment in ASSIGNMENTS:
        assert _errors(course, assignment, "solution") == {}, assignment
        assert scores[assignment, "solution"] == scores[assignment, "max"], assignment


def test_the_untouched_student_version_gets_zero(graded) -> None:
    course, scores = graded
    for assignment in ASSIGNMENTS:
        got = scores[assignment, "untouched"]
        assert got and all(score == 0 for score in got.values()), (assignment, got)
        errors = _errors(course, assignment, "untouched")
        assert set(got) <= set(errors), f"{assignment}: graded cells without an error: {errors}"
        assert all("NotImplementedError" in e for e in errors.values()), errors


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_a_plausible_wrong_answer_gets_partial_marks_and_a_helpful_message(
    graded, assignment: str
) -> None:
    course, scores = graded
    _, _, _, failing, message = WRONG[assignment]
    got, top = scores[assignment, "wrong"], scores[assignment, "max"]
    lost = {cell for cell, score in got.items() if score < top[cell]}
    assert lost == failing, f"{assignment}: cells that lost points {lost}, expected {failing}"
    assert all(got[cell] == 0 for cell in failing)
    assert 0 < sum(got.values()) < sum(top.values())
    errors = _errors(course, assignment, "wrong")
    assert set(errors) == failing, errors
    for cell in failing:
        assert message in errors[cell], f"{assignment}/{cell}: {errors[cell]}"


def test_committed_student_versions_are_the_generated_ones(graded) -> None:
    """exercises/release/ is nbgrader's output for source/, byte for byte in what matters:
    each cell's source and its nbgrader metadata."""
    course, _ = graded
    for assignment in ASSIGNMENTS:
        generated = course / "release" / assignment
        committed = COURSE / "release" / assignment
        names = sorted(p.name for p in generated.iterdir())
        assert sorted(p.name for p in committed.iterdir()) == names, assignment
        for name in names:
            if not name.endswith(".ipynb"):
                assert (committed / name).read_bytes() == (generated / name).read_bytes()
                continue
            want = [("".join(c["source"]), c["metadata"]) for c in _cells(generated / name)]
            got = [("".join(c["source"]), c["metadata"]) for c in _cells(committed / name)]
            assert got == want, (
                f"exercises/release/{assignment}/{name} differs from nbgrader's output: "
                "regenerate it (exercises/README.md), never edit it by hand"
            )
            text = "\n".join(source for source, _ in got)
            assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
            assert not re.search(r"/(home|root|work|tmp)/", text), "a machine-specific path"
