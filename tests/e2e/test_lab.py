"""Real-browser tests of the lessons: JupyterLab in headless Chromium, driven like a student.

``test_widget_smoke`` proves the whole chain (server, kernel, widget rendering, slider,
buttons, error detection, screenshots) on a tiny notebook written here. ``test_ewc_lesson``
runs ``notebooks/02_elastic_weight_consolidation.ipynb`` and plays with its playground.

Selectors relied on (the widget side keeps them, see ``ewclab/widgets.py``):
- λ slider: a ``.widget-slider`` whose ``.widget-label`` contains "λ" (noUiSlider handle
  ``.noUi-handle``, readout ``.widget-readout``);
- buttons: ``button.widget-button`` with text exactly "Run" / "Stop"; Run is disabled first
  thing when a run starts and enabled again last thing when it ends;
- ``.ewclab-result``: the result line; its text changes after every run and contains
  "stopped" after Stop;
- ``.ewclab-plot``: the accuracy plot (an Output widget) holding an image;
- the run's progress: the one ``.widget-hprogress .progress-bar`` (an IntProgress; its
  width is the value in %, class ``progress-bar-info`` while a run is in progress).

Stop is checked on a run that cannot end first on any machine: the run is long by
construction (the smoke run sleeps between steps; the lesson's trains task B for the
slider's most epochs), and Stop is clicked only once the page shows the run advancing.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

LESSON = "notebooks/02_elastic_weight_consolidation.ipynb"
SMOKE = "e2e-smoke/widget_smoke.ipynb"
OPEN_S = 90
SMOKE_RUN_S = 60
LESSON_RUN_ALL_S = 420  # ~90 s on two idle cores, ~400 s on two cores shared four ways
LESSON_RUN_S = 180
LESSON_EPOCHS_B = "2"  # the playground's runs train task B only (task A is cached)
STARTED_S = 15
STOPPED_S = 10  # Stop halts within ~1 s in the kernel; the rest is browser and websocket slack
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
# An IPython error output: a traceback, or a SyntaxError-style "NameError: ..." line.
ERROR_TEXT = re.compile(
    r"Traceback \(most recent call last\)|^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b",
    re.MULTILINE,
)
# What a widget looks like when the front end failed to render it.
UNRENDERED = (
    "FloatLogSlider(",
    "VBox(children=",
    "HBox(children=",
    "Loading widgets",
    "Error displaying widget",
    "model not found",
)
# A cheap fingerprint of an element's rendering, to see that a plot was redrawn.
FINGERPRINT_JS = """el => {
    let h = 0;
    for (const c of el.outerHTML) h = (h * 31 + c.charCodeAt(0)) | 0;
    return h + ':' + el.querySelectorAll('img, svg, canvas').length;
}"""
KERNEL_READY_JS = """() => {
    const status = document.querySelector('.jp-Notebook-ExecutionIndicator');
    const name = document.querySelector('.jp-NotebookPanel-toolbar [data-jp-item-name=kernelName]');
    const kernel = name ? name.textContent.trim() : '';
    return status && status.dataset.status === 'idle' && kernel && !/no kernel/i.test(kernel);
}"""
RUN_ALL_DONE_JS = """() => {
    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
    const ran = prompts.filter(p => /\\[\\d+\\]/.test(p.textContent));
    const queued = prompts.filter(p => p.textContent.includes('*'));
    const status = document.querySelector('.jp-Notebook-ExecutionIndicator');
    return ran.length > 0 && queued.length === 0 && status.dataset.status === 'idle';
}"""

SMOKE_ERROR = "raised on purpose: the smoke test checks that errors are detected"
SMOKE_CELLS = [
    """import threading
from io import BytesIO

import ipywidgets as w
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from IPython.display import Image

lam = w.FloatLogSlider(value=1.0, base=10, min=-2, max=4, step=0.5, description="EWC λ")
run = w.Button(description="Run")
stop = w.Button(description="Stop", disabled=True)
result = w.HTML("not run yet").add_class("ewclab-result")
plot = w.Output().add_class("ewclab-plot")
halt = threading.Event()


def draw(curve):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot(curve)
    buffer = BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    data, metadata = get_ipython().display_formatter.format(Image(buffer.getvalue()))
    plot.outputs = ({"output_type": "display_data", "data": data, "metadata": metadata},)


def train(value, steps=50):  # >= 5 s by construction: 0.1 s of sleep a step
    curve = []
    for step in range(steps):
        if halt.wait(0.1):
            result.value = f"stopped at step {step}"
            break
        result.value = f"running: step {step + 1} of {steps}"
        curve.append(value / (1 + step))
        draw(curve)
    else:
        result.value = f"done: λ = {value:.3g}"
    stop.disabled = True
    run.disabled = False


def on_run(_):
    run.disabled = True
    halt.clear()
    stop.disabled = False
    threading.Thread(target=train, args=(lam.value,), daemon=True).start()


run.on_click(on_run)
stop.on_click(lambda _: halt.set())
w.VBox([lam, w.HBox([run, stop]), result, plot])""",
    'import warnings\n\nwarnings.warn("a harmless warning the e2e test must allow")',
    f"raise ValueError({SMOKE_ERROR!r})",
]


def _write_notebook(path: Path, cells: list[str]) -> None:
    code = [
        {"cell_type": "code", "execution_count": None, "id": f"cell-{i}", "metadata": {},
         "outputs": [], "source": source}
        for i, source in enumerate(cells)
    ]  # fmt: skip
    kernel = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    notebook = {"cells": code, "metadata": {"kernelspec": kernel}, "nbformat": 4,
                "nbformat_minor": 5}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook, indent=1))


def _menu(page, *names: str) -> None:
    """Click through the menu bar, e.g. ``_menu(page, "Run", "Run All Cells")``."""
    for name in names:  # an item's accessible name may end with its shortcut ("Ctrl+S")
        label = re.compile(rf"^{re.escape(name)}(\s+(Ctrl|Alt|Shift|Cmd|Meta)\S*)?$")
        page.get_by_role("menuitem", name=label).click()


def _open(page, lab, path: str) -> None:
    """Open a notebook and wait until its kernel is started, connected and idle."""
    page.goto(lab.tree_url(path), timeout=OPEN_S * 1000)
    page.locator(".jp-NotebookPanel .jp-Notebook").wait_for(timeout=OPEN_S * 1000)
    page.wait_for_function(KERNEL_READY_JS, timeout=OPEN_S * 1000, polling=250)
    deadline = time.monotonic() + OPEN_S
    while time.monotonic() < deadline:
        kernels = [s["kernel"] for s in lab.api("sessions") if s["path"] == path]
        if kernels and kernels[0]["execution_state"] == "idle" and kernels[0]["connections"]:
            return
        time.sleep(0.25)
    raise AssertionError(f"the kernel of {path} was not idle and connected within {OPEN_S} s")


def _clear_outputs(page) -> None:
    """Edit > Clear Outputs of All Cells: stale committed outputs must not pass for new ones."""
    _menu(page, "Edit", "Clear Outputs of All Cells")
    page.wait_for_function(
        "() => !document.querySelector('.jp-Notebook .jp-OutputArea-output')"
        " && ![...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
        ".some(p => /\\d/.test(p.textContent))",
        timeout=10_000,
    )


def _run_all(page, timeout_s: float) -> None:
    """Run > Run All Cells, then wait until nothing is queued and the kernel is idle."""
    _menu(page, "Run", "Run All Cells")
    page.wait_for_function(RUN_ALL_DONE_JS, timeout=timeout_s * 1000, polling=250)
    last = page.locator(".jp-CodeCell .jp-InputPrompt").last.inner_text()
    assert re.search(r"\[\d+\]", last), f"Run All stopped before the last cell ({last!r})"


def _errors(page) -> list[str]:
    """Error outputs shown in the notebook (stderr outputs that are not tracebacks pass)."""
    texts = page.locator(STDERR).all_inner_texts()
    return [text for text in texts if ERROR_TEXT.search(text)]


def _saved_errors(page, lab, path: str) -> list[str]:
    """Save the notebook (File > Save Notebook) and list the error outputs stored in it."""
    file = lab.root / path
    before = file.stat().st_mtime_ns
    _menu(page, "File", "Save Notebook")
    deadline = time.monotonic() + 30
    while file.stat().st_mtime_ns == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert file.stat().st_mtime_ns != before, "the notebook was not saved within 30 s"
    notebook = json.loads(file.read_text())
    outputs = [out for cell in notebook["cells"] for out in cell.get("outputs", [])]
    return [f"{o['ename']}: {o['evalue']}" for o in outputs if o["output_type"] == "error"]


def _assert_widgets_rendered(page) -> None:
    page.locator(".jp-OutputArea-output .jupyter-widgets.widget-slider").first.wait_for()
    shown = "\n".join(page.locator(".jp-OutputArea-output").all_inner_texts())
    leftovers = [text for text in UNRENDERED if text in shown]
    assert not leftovers, f"widgets shown as text, not rendered: {leftovers}"


def _one(locator, what: str):
    assert locator.count() == 1, f"expected one {what}, found {locator.count()}"
    return locator


def _slider(scope, label: str):
    """The one slider whose description contains ``label``."""
    has_label = scope.page.locator(".widget-label", has_text=label)
    return _one(scope.locator(".widget-slider", has=has_label), f"{label!r} slider")


def _set_slider(slider, value: str, key: str = "ArrowLeft", max_keys: int = 50) -> None:
    """Press ``key`` on the slider's handle until its readout shows ``value``."""
    readout, handle = slider.locator(".widget-readout"), slider.locator(".noUi-handle").first
    for _ in range(max_keys):
        if readout.inner_text().strip() == value:
            return
        handle.press(key)
    raise AssertionError(f"the slider did not reach {value}: it shows {readout.inner_text()}")


def _move_slider(slider) -> str:
    """Move the slider by keyboard, like a student; return the readout's new text."""
    readout = slider.locator(".widget-readout")
    before = readout.inner_text()
    handle = slider.locator(".noUi-handle").first
    for key in ("ArrowRight", "ArrowLeft"):
        handle.focus()
        for _ in range(2):
            handle.press(key)
        if readout.inner_text() != before:
            return readout.inner_text()
    raise AssertionError(f"the λ slider did not move from {before}")


def _button(scope, text: str):
    pattern = re.compile(rf"^\s*{text}\s*$")
    return _one(scope.locator("button.widget-button").filter(has_text=pattern), f"{text!r} button")


def _fingerprint(plot) -> str:
    return plot.evaluate(FINGERPRINT_JS)


def _run_and_wait(scope, timeout_s: float) -> str:
    """Click Run; wait until Run is enabled again with a new result line and a redrawn plot."""
    from playwright.sync_api import expect

    run, result, plot = _button(scope, "Run"), scope.locator(".ewclab-result"), _plot(scope)
    before, drawn = result.inner_text(), _fingerprint(plot)
    run.click()
    expect(run).to_be_disabled(timeout=STARTED_S * 1000)
    expect(run).to_be_enabled(timeout=timeout_s * 1000)
    expect(result).not_to_have_text(before, timeout=10_000)
    scope.page.wait_for_function(
        f"([el, drawn]) => ({FINGERPRINT_JS})(el) !== drawn",
        arg=[plot.element_handle(), drawn],
        timeout=10_000,
    )
    return result.inner_text()


def _set_slider_to_max(slider) -> str:
    """Move the slider to its largest value; return that value as its readout shows it."""
    top = float(slider.locator(".noUi-handle").first.get_attribute("aria-valuemax"))
    value = f"{top:g}"
    _set_slider(slider, value, key="ArrowRight", max_keys=200)
    return value


def _smoke_advancing(scope) -> None:
    """The smoke run is under way: its result line counts steps."""
    from playwright.sync_api import expect

    running = re.compile(r"^running: step \d+ of \d+$")
    expect(scope.locator(".ewclab-result")).to_have_text(running, timeout=STARTED_S * 1000)


def _progress_bar(scope):
    return _one(scope.locator(".widget-hprogress .progress-bar"), "progress bar")


def _width(bar) -> float:
    return float(bar.evaluate("el => parseFloat(el.style.width) || 0"))


def _lesson_advancing(scope) -> None:
    """The playground's run is training: its bar, marked running, has moved twice below 100 %.

    The first move may be task A's cached steps arriving at once; the second is training.
    """
    bar = _progress_bar(scope)
    floor = 0.0
    for _ in range(2):
        width = scope.page.wait_for_function(
            "([bar, floor]) => {"
            " const w = parseFloat(bar.style.width) || 0;"
            " return bar.classList.contains('progress-bar-info') && w > floor && w < 100 && w;"
            "}",
            arg=[bar.element_handle(), floor],
            timeout=LESSON_RUN_S * 1000,
            polling=50,
        )
        floor = float(width.json_value())


def _run_and_stop(scope, timeout_s: float, advancing) -> tuple[str, float]:
    """Click Run, then Stop once ``advancing(scope)`` has seen the run progress.

    Returns the result line and Stop's latency (s).
    """
    from playwright.sync_api import expect

    run, stop = _button(scope, "Run"), _button(scope, "Stop")
    result = scope.locator(".ewclab-result")
    run.click()
    expect(run).to_be_disabled(timeout=STARTED_S * 1000)
    expect(stop).to_be_enabled(timeout=STARTED_S * 1000)
    advancing(scope)
    assert run.is_disabled(), "the run ended before Stop could be clicked; make it longer"
    stop.click()
    clicked = time.monotonic()
    expect(result).to_contain_text(re.compile("stopped", re.IGNORECASE), timeout=timeout_s * 1000)
    expect(run).to_be_enabled(timeout=timeout_s * 1000)
    return result.inner_text(), time.monotonic() - clicked


def _plot(scope):
    return _one(scope.locator(".ewclab-plot"), "accuracy plot")


def _widget_cell(page):
    """The code cell whose output holds the dashboard (the one with the result line)."""
    return _one(page.locator(".jp-CodeCell", has=page.locator(".ewclab-result")), "dashboard cell")


def test_widget_smoke(page, lab, artifacts: Path) -> None:
    """The chain works on a tiny notebook: widgets render, the slider, Run and Stop act."""
    _write_notebook(lab.root / SMOKE, SMOKE_CELLS)
    _open(page, lab, SMOKE)
    _run_all(page, SMOKE_RUN_S)

    _assert_widgets_rendered(page)
    errors = _errors(page)
    assert len(errors) == 1 and "raised on purpose" in errors[0], errors
    assert page.locator(STDERR, has_text="harmless warning").count() == 1
    saved = _saved_errors(page, lab, SMOKE)
    assert saved == [f"ValueError: {SMOKE_ERROR}"]

    cell = _widget_cell(page)
    lam = _move_slider(_slider(cell, "λ"))
    assert _run_and_wait(cell, SMOKE_RUN_S) == f"done: λ = {float(lam):.3g}"
    assert cell.locator(".ewclab-plot img").count() == 1
    page.screenshot(path=artifacts / "smoke-after-run.png")

    result, latency = _run_and_stop(cell, STOPPED_S, _smoke_advancing)
    assert result.startswith("stopped at step"), result
    assert int(result.split()[-1]) < 50, result
    assert latency < STOPPED_S
    cell.locator(".jp-Cell-outputArea").screenshot(path=artifacts / "smoke.png")


def test_ewc_lesson(page, lab, artifacts: Path) -> None:
    """Notebook 02 runs without errors and its EWC playground trains, redraws and stops."""
    assert (lab.root / LESSON).exists(), f"{LESSON} is missing"
    timings, start = {}, time.monotonic()
    _open(page, lab, LESSON)
    _clear_outputs(page)
    timings["open"], start = time.monotonic() - start, time.monotonic()
    _run_all(page, LESSON_RUN_ALL_S)
    timings["run all"], start = time.monotonic() - start, time.monotonic()
    page.screenshot(path=artifacts / "lesson-run-all.png")

    assert _errors(page) == []
    assert _saved_errors(page, lab, LESSON) == []
    _assert_widgets_rendered(page)

    cell = _widget_cell(page)
    cell.scroll_into_view_if_needed()
    _move_slider(_slider(cell, "λ"))
    _set_slider(_slider(cell, "epochs B"), LESSON_EPOCHS_B)  # task A is cached: B only
    start = time.monotonic()
    result = _run_and_wait(cell, LESSON_RUN_S)
    timings["playground run"] = time.monotonic() - start
    assert result.strip(), "the result line is empty after a run"
    images = cell.locator(".ewclab-plot img").count()
    assert images == 1, f"the accuracy plot holds {images} images, not one redrawn image"
    page.screenshot(path=artifacts / "lesson-after-run.png")
    cell.locator(".jp-Cell-outputArea").screenshot(path=artifacts / "playground.png")

    epochs_b = _set_slider_to_max(_slider(cell, "epochs B"))  # a long run, stopped early
    result, timings["stop latency"] = _run_and_stop(cell, STOPPED_S, _lesson_advancing)
    (artifacts / "lesson-timings.json").write_text(json.dumps(timings, indent=1))
    assert "stopped" in result.lower(), f"not stopped (epochs B {epochs_b}): {result}"
    assert _width(_progress_bar(cell)) < 100, "the progress bar is full after Stop"
    assert timings["stop latency"] < STOPPED_S
    page.screenshot(path=artifacts / "lesson-after-stop.png")
