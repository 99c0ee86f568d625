"""Predict, then reveal: the student commits to a prediction before a run, then checks it.

A :class:`Prediction` shows a question and either multiple choices or a number box, and a
**Check** button. Before the run the button only records the guess; once the lesson's run
is done, :meth:`Prediction.reveal` hands it the outcome the run measured and the
explanation, and **Check** then unfolds them next to the student's guess. ``reveal`` also
returns the answer as an HTML ``<details>`` block, so readers without a kernel can unfold it
too; the lesson asserts that the answer it reveals is the one its explanation was written
for. :func:`answer` is the same unfoldable block for a "Your turn" question. Used by every
lesson (00–05).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
from IPython.display import HTML

__all__ = ["Prediction", "answer"]


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} must be non-empty, got {value!r}")
    return value


def answer(text: str, summary: str = "Answer") -> HTML:
    """An answer the student can unfold: ``<details><summary>summary</summary>text</details>``.

    ``text`` is HTML (escape it yourself if it holds ``<``); works with and without a kernel.
    """
    text, summary = _text(text, "text"), _text(summary, "summary")
    return HTML(f"<details><summary><b>{html.escape(summary)}</b></summary>\n{text}\n</details>")


class Prediction:
    """A question to answer before a run, with its answer revealed after it.

    Parameters
    ----------
    question : str
        The question (HTML).
    choices : sequence of str, optional
        Multiple choices; without them the student types a number.
    tolerance : float, default 0
        For a number: how far the guess may be from the answer and still count as right.

    Attributes
    ----------
    widget : ipywidgets.VBox
        Question, input, **Check** and the feedback area (display it, or the object).
    choice : ipywidgets.RadioButtons or ipywidgets.FloatText
        The input; set ``.value`` in tests.
    check : ipywidgets.Button
        Call ``.click()`` in tests.
    feedback : ipywidgets.HTML
        What **Check** last said.
    answer : str or float or None
        The revealed answer (None before :meth:`reveal`).
    """

    def __init__(
        self, question: str, choices: Sequence[str] | None = None, tolerance: float = 0.0
    ) -> None:
        self.question = _text(question, "question")
        if choices is not None:
            if isinstance(choices, str) or not all(isinstance(c, str) for c in choices):
                raise TypeError(f"choices must be a sequence of str, got {choices!r}")
            choices = tuple(choices)
            if len(choices) < 2 or len(set(choices)) != len(choices):
                raise ValueError(f"choices must be at least two different strings, got {choices!r}")
        if isinstance(tolerance, bool) or not isinstance(tolerance, int | float):
            raise TypeError(f"tolerance must be a number, got {type(tolerance).__name__}")
        if not math.isfinite(tolerance) or tolerance < 0:
            raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
        self.choices, self.tolerance = choices, float(tolerance)
        self.answer: str | float | None = None
        self.explanation = ""
        if choices is None:
            self.choice = widgets.FloatText(value=None, description="your guess")
        else:
            self.choice = widgets.RadioButtons(
                options=list(choices), value=None, layout=widgets.Layout(width="auto")
            )
        self.check = widgets.Button(description="Check", button_style="info")
        self.feedback = widgets.HTML()
        self.check.on_click(self._on_check)
        self.widget = widgets.VBox(
            [widgets.HTML(f"<b>Predict:</b> {self.question}"), self.choice, self.check,
             self.feedback]
        )

    # -- what the lesson calls -------------------------------------------------------------------
    def reveal(self, answer: str | float, explanation: str) -> HTML:
        """Set the answer (from the run) and its explanation; return them as an unfoldable
        ``<details>`` block for readers without a kernel. **Check** shows them from now on.

        Raises
        ------
        ValueError
            If ``answer`` is not one of the choices (or not a finite number for a number
            question); nothing changes then.
        """
        explanation = _text(explanation, "explanation")
        if self.choices is not None:
            if answer not in self.choices:
                raise ValueError(f"answer must be one of {self.choices!r}, got {answer!r}")
        elif (
            isinstance(answer, bool)
            or not isinstance(answer, int | float)
            or not math.isfinite(answer)
        ):
            raise ValueError(f"answer must be a finite number, got {answer!r}")
        self.answer = answer if self.choices is not None else float(answer)
        self.explanation = explanation
        if self._guess() is not None:  # the student already checked: update in place
            self._on_check()
        return _details(self._answer_html())

    def is_right(self, guess: str | float | None = None) -> bool | None:
        """Whether ``guess`` (default: the student's input) is right; None before the answer
        is revealed or without a guess."""
        guess = self._guess() if guess is None else guess
        if self.answer is None or guess is None:
            return None
        if self.choices is not None:
            return guess == self.answer
        return abs(float(guess) - float(self.answer)) <= self.tolerance

    # -- display ---------------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        """The live widget for Jupyter; the question as HTML for viewers without a kernel."""
        bundle = self.widget._repr_mimebundle_(**kwargs)
        options = "".join(f"<li>{html.escape(c)}</li>" for c in self.choices or ())
        box = f"<ul>{options}</ul>" if options else "<p><i>(your guess: a number)</i></p>"
        bundle["text/html"] = (
            f"<p><b>Predict:</b> {self.question}</p>{box}"
            "<p><i>Decide before you run the next cells; the answer comes after the run.</i></p>"
        )
        plain = re.sub(r"<[^>]+>", "", self.question)
        bundle["text/plain"] = "Predict: " + plain + "".join(f"\n- {c}" for c in self.choices or ())
        return bundle

    # -- internals -------------------------------------------------------------------------------
    def _guess(self) -> str | float | None:
        value = self.choice.value
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return None
        return value

    def _answer_html(self) -> str:
        shown = self.answer if self.choices is not None else f"{self.answer:g}"
        return f"<b>Answer:</b> {html.escape(str(shown))}<br>{self.explanation}"

    def _on_check(self, _button: Any = None) -> None:
        guess = self._guess()
        if guess is None:
            self.feedback.value = "<i>Choose an answer first.</i>"
            return
        shown = guess if self.choices is not None else f"{guess:g}"
        said = f"You predicted <b>{html.escape(str(shown))}</b>. "
        if self.answer is None:
            self.feedback.value = said + "<i>Run the cells below, then press Check again.</i>"
            return
        verdict = "✔ right" if self.is_right() else "✘ not quite"
        self.feedback.value = f"{said}{verdict}.<br>{self._answer_html()}"


def _details(body: str) -> HTML:
    return HTML(f"<details><summary><b>Answer</b></summary>\n{body}\n</details>")
