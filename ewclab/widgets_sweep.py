"""A Jupyter widget that trains a whole λ grid side by side and draws the stability–
plasticity curve live (lesson 04).

>>> from ewclab.widgets_sweep import SweepWidget
>>> SweepWidget()          # doctest: +SKIP   (shows the dashboard)

Like the playground (:mod:`ewclab.widgets`), it is thin: Run calls
:func:`ewclab.experiment.sweep` in a background thread (so Stop works and the kernel stays
free), every evaluation redraws :func:`ewclab.plots.pareto.plot_pareto` (one point per λ,
task A after B against task B) through :func:`~ewclab.widgets_fisher.show_figure`, and a
:class:`~ewclab.experiment.TaskACache` trains task A once for every grid and method.
Every callback can be driven without a browser: set a control's ``.value``, call
``run_button.click()``, then ``wait()``.
"""

from __future__ import annotations

import html
import logging
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

import ipywidgets as w
from matplotlib.figure import Figure

from ewclab.data import Task
from ewclab.experiment import TaskACache, sweep
from ewclab.history import History
from ewclab.plots.pareto import plot_pareto
from ewclab.scenarios import get_scenario
from ewclab.settings import defaults
from ewclab.sweep_training import SweepPoint
from ewclab.tradeoff import lam_grid, parse_lams
from ewclab.training import Point, steps_for
from ewclab.validation import check_option, check_seed
from ewclab.widgets_fisher import show_figure
from ewclab.widgets_options import MODEL_CHOICES, check_tasks, first_line, percent_text

__all__ = ["SWEEP_METHODS", "SweepWidget"]

logger = logging.getLogger(__name__)

#: The penalties the widget sweeps (EWC's Fisher, or every weight alike).
SWEEP_METHODS = ("ewc", "l2")


class SweepWidget:
    """Train task A once, then task B for every λ of a grid at once; draw the trade-off.

    Parameters
    ----------
    tasks : str or sequence of Task
        A task pair (``"mnist->fashion"`` or ``"fashion->mnist"``) or two
        :class:`~ewclab.data.Task` objects (e.g. small tasks for a test).
    model : {"mlp", "testnet", "alexnet"}
        Initial model (each at its row of :func:`ewclab.settings.defaults`).
    method : {"ewc", "l2"}
        Initial penalty.
    lams : sequence of float, optional
        Initial grid; default :func:`ewclab.tradeoff.lam_grid` of the table's λ.
    epochs : float, optional
        Passes over each task (default: the table's).
    cache : TaskACache, optional
        Shared task-A cache (e.g. the playground's).
    seed : int
        Seed of every run.

    Attributes
    ----------
    widget : ipywidgets.VBox
        The dashboard.
    histories : list of History
        The last sweep's runs, one per λ (also of a stopped sweep).
    curves : dict
        Every finished sweep's points by method: ``{method: [(λ, acc_a, acc_b), ...]}``
        (the last sweep of a method replaces its earlier one); what the plot shows.
    error : BaseException or None
        The last sweep's exception, if it failed (its first line is the result line).
    method_choice, model_choice, lams_text, run_button, stop_button, progress, result,
    plot : ipywidgets.Widget
        The controls; ``plot`` holds the live trade-off PNG.
    """

    #: Least time between two live redraws, in seconds.
    redraw_every: float = 0.5

    def __init__(
        self,
        tasks: str | Sequence[Task] = "mnist->fashion",
        model: str = "mlp",
        method: str = "ewc",
        lams: Sequence[float] | None = None,
        epochs: float | None = None,
        cache: TaskACache | None = None,
        seed: int = 0,
    ) -> None:
        pair, scenario, given = check_tasks(tasks)
        check_option(model, "model", MODEL_CHOICES)
        check_option(method, "method", SWEEP_METHODS)
        if cache is not None and not isinstance(cache, TaskACache):
            raise TypeError(f"cache must be a TaskACache or None, got {cache!r}")
        grid = lam_grid(defaults(scenario, model, method).lam) if lams is None else list(lams)
        text = ", ".join(f"{lam:g}" for lam in grid)
        parse_lams(text, "lams")
        self.seed = check_seed(seed, none_ok=False)
        self.epochs = epochs
        self.cache = TaskACache() if cache is None else cache
        self._scenario, self._given = scenario, given
        self._tasks: list[Task] | None = given
        self.histories: list[History] = []
        self.curves: dict[str, list[tuple[float, float, float]]] = {}
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._running = False
        self._thread: threading.Thread | None = None
        self._figure: Figure | None = None
        self._last_draw = -math.inf
        self._live: tuple[dict[str, Any], list] = ({}, [])

        self.method_choice = w.ToggleButtons(options=SWEEP_METHODS, value=method,
                                             description="penalty")
        self.model_choice = w.Dropdown(options=MODEL_CHOICES, value=model, description="model")
        self.lams_text = w.Text(value=text, description="λ grid",
                                layout=w.Layout(width="460px"))
        self.run_button = w.Button(description="Run", button_style="primary", icon="play")
        self.stop_button = w.Button(description="Stop", icon="stop", disabled=True)
        self.progress = w.IntProgress(value=0, min=0, max=1, description="progress")
        self.result = w.HTML(f"Task A: {html.escape(pair)}. Set a λ grid and press Run.")
        self.plot = w.Output().add_class("ewclab-plot")
        self.method_choice.observe(self._on_choice, names="value")
        self.model_choice.observe(self._on_choice, names="value")
        self.run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.stop())
        self.widget = w.VBox([
            w.HBox([self.method_choice, self.model_choice]),
            self.lams_text,
            w.HBox([self.run_button, self.stop_button, self.progress]),
            self.result,
            self.plot,
        ])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        state = "running" if self._running else f"{len(self.curves)} curve(s)"
        return f"SweepWidget({self._scenario!r}, {self.model_choice.value!r}, {state})"

    @property
    def running(self) -> bool:
        """True while a sweep is in progress."""
        return self._running

    def _on_choice(self, change: Any) -> None:
        """A new method or model: the grid moves to that combination's table λ."""
        row = defaults(self._scenario, self.model_choice.value, self.method_choice.value)
        self.lams_text.value = ", ".join(f"{lam:g}" for lam in lam_grid(row.lam))

    # ------------------------------------------------------------------ run / stop / wait
    def run(self) -> bool:
        """Start a sweep with the controls' values (what clicking Run does).

        Returns
        -------
        bool
            False, doing nothing, while a sweep runs; False, saying why in the result
            line, when the λ grid cannot be read.
        """
        with self._lock:
            if self._running:
                return False
            try:
                lams = parse_lams(self.lams_text.value, "the λ grid")
            except ValueError as err:
                self.result.value = html.escape(str(err))
                return False
            settings = {"method": self.method_choice.value, "model": self.model_choice.value,
                        "lams": lams}
            self._running = True
            self.run_button.disabled = True
        self._halt.clear()
        self.error = None
        self.stop_button.disabled = False
        self.progress.bar_style = "info"
        self.result.value = html.escape(
            f"Training {len(lams)} λ side by side ({settings['method']}, "
            f"{settings['model']}) …")
        self._thread = threading.Thread(target=self._work, args=(settings,),
                                        name="ewclab-sweep", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        """Ask the sweep to stop after the step in progress."""
        self._halt.set()
        self.stop_button.disabled = True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the sweep's thread to end; True when no sweep is in progress."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    # ------------------------------------------------------------------ the worker thread
    def _work(self, s: dict[str, Any]) -> None:
        try:
            self._train(s)
        except Exception as err:
            self.error = err
            logger.debug("sweep failed", exc_info=err)
            self.progress.bar_style = "danger"
            self.result.value = html.escape(f"Sweep failed: {first_line(err)}")
        finally:
            with self._lock:
                self.stop_button.disabled = True
                self.run_button.disabled = False
                self._running = False

    def _train(self, s: dict[str, Any]) -> None:
        if self._tasks is None:
            self._tasks = get_scenario(self._scenario)
        tasks = self._tasks
        row = defaults(self._scenario, s["model"], s["method"])
        epochs = row.epochs if self.epochs is None else self.epochs
        self.progress.value = 0
        self.progress.max = sum(steps_for(t, epochs, row.batch_size) for t in tasks)
        self._last_draw = -math.inf
        self._live = (s, [])
        histories = sweep(
            s["lams"], tasks, s["model"], s["method"], epochs=epochs, seed=self.seed,
            callback=self._on_point, stop=self._halt.is_set, cache=self.cache,
        )
        self.histories = histories
        finished = [h for h in histories if not math.isnan(h.accuracy_matrix[-1, -1])]
        if len(finished) < len(histories):
            self.progress.bar_style = "warning"
            self.result.value = html.escape(
                f"Stopped at step {histories[0].steps[-1] if histories[0].steps else 0}: "
                "the curve shows where each λ had got to.")
            return
        self.curves[s["method"]] = [
            (lam, float(h.accuracy_matrix[1, 0]), float(h.accuracy_matrix[1, 1]))
            for lam, h in zip(s["lams"], histories, strict=True)
        ]
        self._draw(self.curves)
        self.progress.value = self.progress.max
        self.progress.bar_style = "success"
        best = max(self.curves[s["method"]], key=lambda p: p[1] + p[2])
        self.result.value = (
            f"<b>{len(histories)} λ</b> ({html.escape(s['method'])}): task A after B from "
            f"{percent_text(min(p[1] for p in self.curves[s['method']]))} to "
            f"{percent_text(max(p[1] for p in self.curves[s['method']]))}; best sum at "
            f"λ = {best[0]:g} (A {percent_text(best[1])}, B {percent_text(best[2])})"
        )

    def _on_point(self, point: Point | SweepPoint) -> None:
        self.progress.value = min(point.step, self.progress.max)
        if not isinstance(point, SweepPoint):
            return  # task A: shared by every λ, nothing to compare yet
        if time.monotonic() - self._last_draw < self.redraw_every:
            return
        s = self._live[0]
        a, b = point.histories[0].tasks[:2]
        live = [(lam, acc[a], acc[b]) for lam, acc in zip(s["lams"], point.accuracies,
                                                          strict=True)]
        self._draw({**self.curves, s["method"]: live})

    def _draw(self, curves: dict) -> None:
        names = (self._tasks[0].name, self._tasks[1].name)
        self._figure = plot_pareto(curves, tasks=names, chance=1 / self._tasks[0].num_classes,
                                   fig=self._figure)
        show_figure(self.plot, self._figure)
        self._last_draw = time.monotonic()
