"""Predict-then-reveal and still-figure helpers, driven headless: set .value, call .click()."""

from __future__ import annotations

import base64

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ewclab.reveal import Prediction, answer  # noqa: E402
from ewclab.still import figure_bundle, live_bundle  # noqa: E402

CHOICES = ("it stays", "it drops a little", "it collapses")


def test_choice_check_before_and_after_the_reveal():
    quiz = Prediction("What happens to MNIST?", CHOICES)
    quiz.check.click()
    assert "Choose an answer first" in quiz.feedback.value
    quiz.choice.value = "it stays"
    quiz.check.click()
    assert "You predicted <b>it stays</b>" in quiz.feedback.value
    assert "Answer" not in quiz.feedback.value  # nothing revealed before the run
    assert quiz.is_right() is None
    details = quiz.reveal("it collapses", "from 88.8 % to 32.1 %")
    assert "<details>" in details.data and "it collapses" in details.data
    # the student had checked: the feedback updates in place, with the verdict
    assert "✘ not quite" in quiz.feedback.value and "32.1 %" in quiz.feedback.value
    quiz.choice.value = "it collapses"
    quiz.check.click()
    assert "✔ right" in quiz.feedback.value
    assert quiz.is_right() is True


def test_number_guess_is_right_within_the_tolerance():
    quiz = Prediction("Which λ does the Laplace argument give?", tolerance=0.5)
    quiz.reveal(1.0, "N_A / N_B = 4000 / 4000")
    quiz.choice.value = 1.4
    quiz.check.click()
    assert "✔ right" in quiz.feedback.value and "You predicted <b>1.4</b>" in quiz.feedback.value
    quiz.choice.value = 2000.0
    quiz.check.click()
    assert "✘ not quite" in quiz.feedback.value
    assert quiz.is_right(0.6) is True and quiz.is_right(1.6) is False


@pytest.mark.parametrize(
    "args, error",
    [
        (("",), ValueError),
        ((3,), TypeError),
        (("q?", "abc"), TypeError),
        (("q?", ["only one"]), ValueError),
        (("q?", ["a", "a"]), ValueError),
        (("q?", None, -1.0), ValueError),
        (("q?", None, "1"), TypeError),
    ],
)
def test_bad_questions_are_refused(args, error):
    with pytest.raises(error):
        Prediction(*args)


def test_a_refused_reveal_changes_nothing():
    quiz = Prediction("q?", CHOICES)
    with pytest.raises(ValueError, match="answer must be one of"):
        quiz.reveal("something else", "why")
    number = Prediction("how many?")
    for bad in (float("nan"), "1", True):
        with pytest.raises(ValueError, match="answer must be a finite number"):
            number.reveal(bad, "why")
    with pytest.raises(ValueError, match="explanation"):
        quiz.reveal("it stays", " ")
    assert quiz.answer is None and number.answer is None and quiz.explanation == ""


def test_static_view_shows_the_question_and_hides_the_answer():
    quiz = Prediction("What happens <i>to MNIST</i>?", CHOICES)
    bundle = quiz._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert all(c in bundle["text/html"] for c in CHOICES)
    assert "to MNIST" in bundle["text/html"]
    assert bundle["text/plain"].startswith("Predict: What happens to MNIST?\n- it stays")


def test_answer_is_an_unfoldable_block():
    block = answer("λ ten times larger <b>freezes</b> task B")
    assert block.data.startswith("<details><summary><b>Answer</b></summary>")
    assert "<b>freezes</b>" in block.data
    with pytest.raises(ValueError):
        answer("")


def _figure() -> Figure:
    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    return fig


def test_figure_bundle_carries_png_and_alt_text():
    data, metadata = figure_bundle(_figure(), "a falling line")
    assert base64.b64decode(data["image/png"]).startswith(b"\x89PNG")
    assert data["text/plain"] == "a falling line"
    assert metadata == {"image/png": {"alt": "a falling line"}}
    with pytest.raises(ValueError, match="alt"):
        figure_bundle(_figure(), "  ")
    with pytest.raises(TypeError, match="fig"):
        figure_bundle("not a figure", "alt")


def test_live_bundle_has_the_widget_and_the_still_picture():
    quiz = Prediction("q?", CHOICES)
    data, metadata = live_bundle(quiz.widget, _figure(), "the default run")
    assert "application/vnd.jupyter.widget-view+json" in data and "image/png" in data
    assert data["text/plain"] == "the default run"
    with pytest.raises(TypeError, match="widget"):
        live_bundle(object(), _figure(), "alt")
