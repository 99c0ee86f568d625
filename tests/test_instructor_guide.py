"""The instructor guide (docs/instructor.md) keeps up with the lessons, the exercises and the
Makefile: every lesson has a section with an answer per question, every «quoted» number is
still in the committed lesson's outputs, every lesson has a measured time, and every
``make`` target, path and nbgrader command the guide names exists."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs" / "instructor.md").read_text()
LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ASSIGNMENTS = sorted(p.name for p in (ROOT / "exercises" / "source").iterdir() if p.is_dir())
#: "## Lesson 00 · `notebooks/00_intuition.ipynb`": one section per lesson file.
LESSON_HEADING = re.compile(r"^## Lesson \w+ · `notebooks/([^`]+\.ipynb)`$", re.MULTILINE)
QUOTE = re.compile(r"«([^»]+)»")
TAG = re.compile(r"</?[A-Za-z][^>]*>")
FENCE = re.compile(r"^```\w*\n(.*?)^```", re.DOTALL | re.MULTILINE)
#: Top-level folders whose paths the guide may name in backticks.
TOP = (
    "notebooks/",
    "exercises/",
    "app/",
    "docs/",
    "binder/",
    "benchmarks/",
    "tests/",
    "lab/",
    "ewclab/",
)


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _sections() -> dict[str, str]:
    """Each level-2 section of the guide by its heading line."""
    parts = re.split(r"^(## .+)$", GUIDE, flags=re.MULTILINE)
    return {head: body for head, body in zip(parts[1::2], parts[2::2], strict=True)}


def _lesson_sections() -> dict[str, str]:
    found = {}
    for head, body in _sections().items():
        match = LESSON_HEADING.match(head)
        if match:
            found[match.group(1)] = body
    return found


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _outputs(path: Path) -> str:
    """Everything the committed lesson shows as output, as plain text, whitespace squashed."""
    parts = []
    for cell in _cells(path):
        for out in cell.get("outputs", []):
            parts.append("".join(out.get("text", "")))
            for mime, text in out.get("data", {}).items():
                if mime in ("text/plain", "text/markdown"):
                    parts.append("".join(text))
                elif mime == "text/html":
                    text = re.sub(r"<(style|script)\b.*?</\1>", " ", "".join(text), flags=re.S)
                    parts.append(html.unescape(TAG.sub(" ", text)))
    return _squash(" ".join(parts))


def _count_questions(path: Path) -> tuple[int, int]:
    """(prediction widgets, "Your turn" cells) of a lesson."""
    cells = _cells(path)
    predictions = sum(
        "".join(c["source"]).count("Prediction(") for c in cells if c["cell_type"] == "code"
    )
    turns = sum("Your turn" in "".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return predictions, turns


def test_every_lesson_has_one_section_and_no_section_is_stale() -> None:
    assert LESSONS, "no lessons found"
    assert sorted(_lesson_sections()) == [p.name for p in LESSONS]
    assert len(LESSON_HEADING.findall(GUIDE)) == len(LESSONS), "a lesson has two sections"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_every_question_of_the_lesson_has_an_answer(lesson: Path) -> None:
    section = _lesson_sections()[lesson.name]
    predictions, turns = _count_questions(lesson)
    assert section.count("**Predict") == predictions, (
        f"{lesson.name} has {predictions} prediction widgets; answer each as '- **Predict:** ...'"
    )
    assert section.count("**Your turn") == turns, (
        f"{lesson.name} has {turns} 'Your turn' cells; answer each as '- **Your turn:** ...'"
    )
    assert "**Learning objectives" in section, f"{lesson.name}: no learning objectives"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_quoted_numbers_are_the_committed_lessons(lesson: Path) -> None:
    quotes = [_squash(q) for q in QUOTE.findall(_lesson_sections()[lesson.name])]
    assert quotes, f"{lesson.name}: its section quotes none of the lesson's measured results"
    shown = _outputs(lesson)
    stale = [q for q in quotes if q not in shown]
    assert not stale, f"{lesson.name} no longer shows: {stale}"


def test_quotes_outside_the_lesson_sections_are_in_some_lesson() -> None:
    lesson_bodies = set(_lesson_sections().values())
    others = [b for b in _sections().values() if b not in lesson_bodies]
    shown = " ".join(_outputs(p) for p in LESSONS)
    stale = [q for b in others for q in map(_squash, QUOTE.findall(b)) if q not in shown]
    assert not stale, f"quotes no lesson shows any more: {stale}"


def test_every_lesson_has_a_measured_time() -> None:
    (measured,) = [b for h, b in _sections().items() if h.startswith("## Measured compute times")]
    rows = [line for line in measured.splitlines() if line.startswith("|")]
    for lesson in LESSONS:
        (row,) = [r for r in rows if f"`{lesson.name}`" in r]
        assert re.search(r"\| \d+(\.\d+)? \|", row), f"{lesson.name}: no measured seconds"
    assert "one torch thread" in measured and "load" in measured


def test_named_make_targets_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):", makefile, re.MULTILINE))
    inline = re.findall(r"`make ([\w-]+)", GUIDE)
    fenced = [
        line.split()[1]
        for block in FENCE.findall(GUIDE)
        for line in block.splitlines()
        if line.startswith("make ")
    ]
    named = set(inline) | set(fenced)
    assert {"lab", "app", "test"} <= named
    assert not named - targets, (
        f"the guide names make targets the Makefile lacks: {named - targets}"
    )


def test_named_paths_exist() -> None:
    inline = [w for span in re.findall(r"`([^`\n]+)`", GUIDE) for w in span.split()]
    fenced = [w for block in FENCE.findall(GUIDE) for w in block.split()]
    paths = {p.rstrip("/") for p in inline + fenced if p.startswith(TOP) and "<" not in p}
    assert "exercises/source" in paths and "app/playground.ipynb" in paths
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"the guide names paths that do not exist: {missing}"


def test_every_assignment_is_described() -> None:
    table = [line for line in GUIDE.splitlines() if line.startswith("| `")]
    described = {re.match(r"\| `([^`]+)`", line).group(1) for line in table}
    assert set(ASSIGNMENTS) <= described, f"assignments missing from the guide: {ASSIGNMENTS}"


def test_nbgrader_commands_are_real() -> None:
    nbgrader = pytest.importorskip("nbgrader.apps.nbgraderapp")
    subcommands = set(nbgrader.NbGraderApp.subcommands)
    commands = [
        re.sub(r"\s+#.*$", "", line).split()
        for block in FENCE.findall(GUIDE)
        for line in block.splitlines()
        if line.startswith("nbgrader ")
    ]
    assert len(commands) >= 5
    for words in commands:
        assert words[1] in subcommands, f"nbgrader has no subcommand {words[1]!r}"
        arguments = [w for w in words[2:] if not w.startswith("-") and w != '"*"']
        for word in arguments:
            assert word in ASSIGNMENTS or words[words.index(word) - 1] == "--course", (
                f"{' '.join(words)}: {word!r} is not an assignment in exercises/source"
            )
    config = (ROOT / "exercises" / "nbgrader_config.py").read_text()
    (course,) = re.findall(r'course_id = "(\w+)"', config)
    assert all(
        words[words.index("--course") + 1] == course for words in commands if "--course" in words
    ), f"the course id is {course!r}"


def test_the_readmes_link_the_guide() -> None:
    readme = (ROOT / "README.md").read_text()
    teachers = readme.split("## For teachers", 1)[1].split("\n## ", 1)[0]
    assert "](docs/instructor.md)" in teachers, "README's teachers' section must link the guide"
    assert "](../docs/instructor.md)" in (ROOT / "notebooks" / "README.md").read_text()
