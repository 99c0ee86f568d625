"""The EWC playground: sliders, Run/Stop and a live plot in Jupyter (the Fisher explorer,
:mod:`ewclab.widgets_fisher`, is importable from here too).

>>> from ewclab.widgets import EWCPlayground
>>> playground = EWCPlayground()      # doctest: +SKIP
>>> playground                        # doctest: +SKIP   (shows the dashboard)

The widgets are thin: a run calls :func:`ewclab.experiment.run_plan` in a background
thread (so Stop works and the kernel stays free) and draws with :mod:`ewclab.plots`. A
:class:`~ewclab.experiment.TaskACache` keeps the model trained on task A, so moving λ or
task B's epochs re-trains task B only. What a run uses besides the controls (learning
rate, width, optimiser, batch size) and where λ and the epochs start come from the one
table of defaults, :func:`ewclab.settings.defaults`. Every callback can be driven without
a browser: set a control's ``.value``, call ``run_button.click()``, then ``wait()``.
"""

from __future__ import annotations

import html
import logging
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as w
from matplotlib.figure import Figure

from ewclab import plots
from ewclab.data import Task
from ewclab.experiment import DEFAULTS, Point, TaskACache, plan, run_plan
from ewclab.fisher import KINDS
from ewclab.history import History
from ewclab.scenarios import get_scenario
from ewclab.settings import Settings, defaults
from ewclab.validation import check_option
from ewclab.widgets_fisher import FisherExplorer, show_figure
from ewclab.widgets_options import (
    FISHER_SAMPLES,
    LAM_STEP,
    MAX_EPOCHS,
    MODEL_CHOICES,
    TASK_PAIRS,
    FisherMaxima,
    check_arguments,
    check_tasks,
    first_line,
    lam_range,
    largest_stable_lam,
    limit_text,
    method_text,
    percent_text,
    refusal,
    row_epochs,
)

__all__ = ["MODEL_CHOICES", "TASK_PAIRS", "EWCPlayground", "FisherExplorer", "lam_range",
           "largest_stable_lam"]

logger = logging.getLogger(__name__)


class EWCPlayground:
    """Train task A then task B with or without EWC, live, from sliders and buttons.

    Parameters
    ----------
    tasks : str or sequence of Task
        A task pair from :data:`TASK_PAIRS`, or two :class:`~ewclab.data.Task` objects
        (offered in the task dropdown as ``"a->b (given)"``, e.g. small tasks for a test).
    model : {"mlp", "testnet", "alexnet"}
        Initial model choice.
    lam : float, optional
        Initial EWC strength λ (penalty = λ/2 Σ F_i (θ_i − θ*_i)²), within the slider's
        range (:func:`lam_range` of the table's λ); 0 starts with EWC switched off.
        Default: the λ of ``defaults(tasks, model, "ewc")``.
    epochs_a, epochs_b : int, optional
        Initial passes over task A and task B (1 to :data:`MAX_EPOCHS`); default: the
        table's epochs.
    fisher : {"empirical", "exact", "sampled"}
        Initial Fisher kind.
    fisher_samples : int
        Initial number of task-A samples for its Fisher.
    cache : TaskACache, optional
        Shared task-A cache (a new one by default): runs that differ only in λ, the
        method or task B's epochs skip training task A.
    seed : int
        Seed of every run, in [0, 2**64).
    source : {"bundled", "full"}
    root : str or path-like, optional
        Data for the task-pair names (see :func:`ewclab.data.load_task`).

    Raises
    ------
    TypeError, ValueError
        For a bad argument (the message names it), before any widget is built.

    Attributes
    ----------
    widget : ipywidgets.VBox
        The dashboard (displaying the playground displays it).
    history : History or None
        The last run's history (also of a stopped run).
    results : list of dict
        One dict per completed run: ``run``, ``method`` ("ewc" or "sgd"), ``lam``,
        ``acc_a_before`` (task A right after learning it), ``acc_a_after`` (task A after
        task B), ``acc_a`` (the same, the key :func:`ewclab.plots.plot_tradeoff` reads),
        ``acc_b``, and the run's settings (``tasks``, ``model``, ``epochs_a``,
        ``epochs_b``, ``fisher``, ``fisher_samples``, ``lr``, ``width``). Accuracies are
        fractions.
    error : BaseException or None
        The exception of the last run, if it failed (its first line is the result line;
        the traceback goes to the ``ewclab.widgets`` logger at DEBUG).
    lam_slider, ewc_toggle, epochs_a, epochs_b, fisher_kind, fisher_samples, model_choice,
    task_choice, run_button, stop_button, progress, plot, result, lam_limit : ipywidgets.Widget
        The controls; ``plot`` (CSS class ``ewclab-plot``) holds the live accuracy PNG,
        ``result`` (class ``ewclab-result``) the result line, ``lam_limit`` (class
        ``ewclab-lam-limit``) the largest stable λ once task A's Fisher is known.

    Notes
    -----
    Picking a task pair or a model moves λ (and its slider's range) and the epochs to that
    combination's row of :func:`ewclab.settings.defaults`. Once a run has computed task A's
    Fisher for the current task pair, model, epochs A and Fisher settings, a run with a
    λ the SGD stability bound says will diverge is refused before it starts; before that,
    the run's own check stops it after task A with one line. The accuracy plot is redrawn
    at most every :attr:`redraw_every` seconds during a run, and once more when it ends.
    """

    #: Least time between two live redraws of the accuracy plot, in seconds.
    redraw_every: float = 0.5

    def __init__(
        self,
        tasks: str | Sequence[Task] = DEFAULTS["tasks"],
        model: str = DEFAULTS["model"],
        lam: float | None = None,
        epochs_a: int | None = None,
        epochs_b: int | None = None,
        fisher: str = DEFAULTS["fisher"],
        fisher_samples: int = DEFAULTS["fisher_samples"],
        cache: TaskACache | None = None,
        seed: int = DEFAULTS["seed"],
        *,
        source: str = "bundled",
        root: str | os.PathLike | None = None,
    ) -> None:
        pair, scenario, given = check_tasks(tasks)
        self._pairs: dict[str, str | list[Task]] = {p: p for p in TASK_PAIRS}
        self._scenarios = {p: p for p in TASK_PAIRS} | {pair: scenario}
        if given is not None:
            self._pairs[pair] = given
        check_option(model, "model", MODEL_CHOICES)
        row = self._row(pair, model, "ewc")
        lam, epochs_a, epochs_b, self.seed = check_arguments(
            row, pair, lam, epochs_a, epochs_b, fisher, fisher_samples, cache, seed, source, root
        )
        lo, hi = lam_range(row.lam)
        self.source, self.root = source, root
        self.cache = TaskACache() if cache is None else cache

        self.history: History | None = None
        self.results: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self._loaded: dict[str, list[Task]] = {}
        self._fishers = FisherMaxima(self.cache, self.seed, self._tasks)
        self._live: History | None = None
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._running = False
        self._thread: threading.Thread | None = None
        self._runs = 0
        self._last_draw = -math.inf
        self._figure: Figure | None = None

        self.task_choice = w.Dropdown(options=list(self._pairs), value=pair, description="tasks")
        self.model_choice = w.Dropdown(options=MODEL_CHOICES, value=model, description="model")
        self.epochs_a = w.IntSlider(epochs_a, min=1, max=MAX_EPOCHS, description="epochs A")
        self.epochs_b = w.IntSlider(epochs_b, min=1, max=MAX_EPOCHS, description="epochs B")
        self.ewc_toggle = w.Checkbox(value=lam != 0, description="use EWC", indent=False)
        self.lam_slider = w.FloatLogSlider(
            value=lam or row.lam, base=10, min=lo, max=hi, step=LAM_STEP, description="EWC λ",
            readout_format=".3g", disabled=lam == 0, layout=w.Layout(width="460px"),
        )
        self.lam_limit = w.HTML("").add_class("ewclab-lam-limit")
        self.fisher_kind = w.Dropdown(options=list(KINDS), value=fisher, description="Fisher")
        self.fisher_samples = w.Dropdown(
            options=sorted({*FISHER_SAMPLES, int(fisher_samples)}), value=int(fisher_samples),
            description="samples",
        )
        self.run_button = w.Button(description="Run", button_style="primary", icon="play")
        self.stop_button = w.Button(description="Stop", icon="stop", disabled=True)
        self.progress = w.IntProgress(value=0, min=0, max=1, description="progress")
        self.result = w.HTML("Set the sliders and press Run.").add_class("ewclab-result")
        self.plot = w.Output().add_class("ewclab-plot")

        self.task_choice.observe(self._on_choice, names="value")
        self.model_choice.observe(self._on_choice, names="value")
        self.ewc_toggle.observe(self._on_toggle, names="value")
        for control in (self.lam_slider, self.epochs_a, self.fisher_kind, self.fisher_samples):
            control.observe(lambda _: self._show_limit(), names="value")
        self.run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.stop())
        self.widget = w.VBox([
            w.HBox([self.task_choice, self.model_choice]),
            w.HBox([self.epochs_a, self.epochs_b]),
            w.HBox([self.ewc_toggle, self.lam_slider, self.lam_limit]),
            w.HBox([self.fisher_kind, self.fisher_samples]),
            w.HBox([self.run_button, self.stop_button, self.progress]),
            self.result,
            self.plot,
        ])
        self._show_limit()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        state = "running" if self.running else f"{len(self.results)} runs"
        return f"EWCPlayground({self.task_choice.value!r}, {self.model_choice.value!r}, {state})"

    @property
    def running(self) -> bool:
        """True while a run is in progress."""
        return self._running

    @property
    def method(self) -> str:
        """``"ewc"`` when the EWC toggle is on, else ``"sgd"`` (plain training)."""
        return "ewc" if self.ewc_toggle.value else "sgd"

    @property
    def lam(self) -> float:
        """The λ the next run uses: the slider's value, or 0 with EWC switched off."""
        return float(self.lam_slider.value) if self.ewc_toggle.value else 0.0

    @property
    def stable_lam(self) -> float | None:
        """The largest λ SGD stays stable at for the current settings (None: not known yet).

        Known once a run has computed task A's Fisher for the current task pair, model,
        epochs A, Fisher kind and samples; see :func:`largest_stable_lam`.
        """
        return self._limit(self._settings())

    def _limit(self, s: Mapping) -> float | None:
        """The largest stable λ for a run with settings ``s`` (None: not known yet)."""
        max_fisher = self._fishers.get(s)
        if max_fisher is None:
            return None
        return largest_stable_lam(max_fisher, self._row(s["pair"], s["model"], "ewc"))

    # ------------------------------------------------------------------ defaults and limits

    def _row(self, pair: str, model: str, method: str) -> Settings:
        """The defaults-table row of a task pair, model and method."""
        return defaults(self._scenarios[pair], model, method)

    def _on_choice(self, change: Mapping) -> None:
        """A new task pair or model: move λ, its range and the epochs to the table's row."""
        row = self._row(self.task_choice.value, self.model_choice.value, "ewc")
        lo, hi = lam_range(row.lam)
        with self.lam_slider.hold_trait_notifications():
            self.lam_slider.min, self.lam_slider.max, self.lam_slider.value = lo, hi, row.lam
        self.epochs_a.value = self.epochs_b.value = row_epochs(row)
        self._show_limit()

    def _on_toggle(self, change: Mapping) -> None:
        self.lam_slider.disabled = not change["new"]
        self._show_limit()

    def _show_limit(self) -> None:
        """Say up to which λ a run stays stable, and whether the slider is past it."""
        text = limit_text(self.lam, self.stable_lam) if self.ewc_toggle.value else ""
        self.lam_limit.value = html.escape(text)

    def _learn_limit(self, s: Mapping, history: History | None) -> None:
        self._fishers.learn(s, history)
        self._show_limit()

    # ------------------------------------------------------------------ run / stop / wait

    def _settings(self) -> dict[str, Any]:
        """The next run's settings: the controls and their row of the defaults table."""
        pair, model, method = self.task_choice.value, self.model_choice.value, self.method
        row = self._row(pair, model, method)
        return {
            "pair": pair, "model": model, "method": method, "lam": self.lam,
            "epochs_a": int(self.epochs_a.value), "epochs_b": int(self.epochs_b.value),
            "fisher": self.fisher_kind.value, "fisher_samples": int(self.fisher_samples.value),
            "lr": row.lr, "width": row.width, "optimizer": row.optimizer,
            "batch_size": row.batch_size,
        }  # fmt: skip

    def run(self) -> bool:
        """Start a run with the controls' current values (what clicking Run does).

        Returns
        -------
        bool
            False, doing nothing, when a run is already in progress; False, saying why in
            the result line, when λ is at or above the known largest stable λ.
        """
        with self._lock:
            if self._running:
                return False
            settings = self._settings()
            limit = self._limit(settings)
            if settings["method"] == "ewc" and limit is not None and settings["lam"] >= limit:
                self.result.value = html.escape(refusal(settings["lam"], limit))
                return False
            self._running = True
            self.run_button.disabled = True
        self._runs += 1
        self._halt.clear()
        self.error = None
        self.result.value = html.escape(f"Run {self._runs}: {self._describe(settings)} …")
        self.progress.bar_style = "info"
        self.stop_button.disabled = False
        self._thread = threading.Thread(
            target=self._work, args=(self._runs, settings), name="ewclab-run", daemon=True
        )
        self._thread.start()
        return True

    def stop(self) -> None:
        """Ask the current run to stop (it halts after the step in progress)."""
        self._halt.set()
        self.stop_button.disabled = True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the current run's thread to end.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait at most (default: until it ends).

        Returns
        -------
        bool
            True when no run is in progress any more.
        """
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    @staticmethod
    def _describe(s: Mapping) -> str:
        epochs = f"epochs {s['epochs_a']}+{s['epochs_b']}"
        return f"{s['pair']}, {s['model']}, {epochs}, {method_text(s)}"

    def _tasks(self, pair: str) -> list[Task]:
        spec = self._pairs[pair]
        if not isinstance(spec, str):
            return spec
        if spec not in self._loaded:
            self._loaded[spec] = get_scenario(spec, source=self.source, root=self.root)
        return self._loaded[spec]

    def _work(self, run: int, s: Mapping) -> None:
        """The worker thread: train, draw, report; always leaves the buttons usable."""
        self._live = None
        try:
            self._train(run, s)
        except Exception as err:
            self._fail(run, s, err)
        finally:
            with self._lock:  # one step with _running: a run() now sees both or neither
                self.stop_button.disabled = True
                self.run_button.disabled = False
                self._running = False

    def _fail(self, run: int, s: Mapping, err: Exception) -> None:
        """One result line for a failed run; the traceback goes to the logger at DEBUG."""
        self.error = err
        logger.debug("playground run %d failed", run, exc_info=err)
        self.progress.bar_style = "danger"
        self._learn_limit(s, self._live)  # a run refused after task A still taught its Fisher
        limit = self._limit(s)
        if isinstance(err, ValueError) and limit is not None and s["lam"] >= limit:
            self.result.value = html.escape(refusal(s["lam"], limit, run))
        else:
            self.result.value = html.escape(f"Run {run} failed: {first_line(err)}")

    def _train(self, run: int, s: Mapping) -> None:
        p = plan(
            self._tasks(s["pair"]), s["model"], s["method"], s["lam"],
            (s["epochs_a"], s["epochs_b"]), s["fisher"], s["fisher_samples"], self.seed,
            width=s["width"], lr=s["lr"], optimizer=s["optimizer"], batch_size=s["batch_size"],
        )
        self.progress.value = 0
        self.progress.max = p.steps()
        self._last_draw = -math.inf
        history = run_plan(p, callback=self._on_point, stop=self._halt.is_set, cache=self.cache)
        self.history = self._live = history
        self._learn_limit(s, history)
        self._draw(history)
        if math.isnan(history.accuracy_matrix[-1, -1]):  # Stop ended it early
            step = history.steps[-1] if history.steps else 0
            task = history.tasks[len(history.boundaries) - 1] if history.boundaries else "-"
            self.result.value = html.escape(
                f"Run {run} stopped at step {step} (training {task}): {self._describe(s)}"
            )
            self.progress.bar_style = "warning"
        else:
            self._report(run, s, history)
            self.progress.value = self.progress.max
            self.progress.bar_style = "success"

    def _on_point(self, point: Point) -> None:
        self._live = point.history
        self.progress.value = min(point.step, self.progress.max)
        if point.history is not None and time.monotonic() - self._last_draw >= self.redraw_every:
            self._draw(point.history)

    def _draw(self, history: History) -> None:
        self._figure = plots.plot_accuracy(history.snapshot(), fig=self._figure)
        show_figure(self.plot, self._figure)
        self._last_draw = time.monotonic()

    def _report(self, run: int, s: Mapping, history: History) -> None:
        R = history.accuracy_matrix
        a, b = history.tasks
        row = {
            "run": run,
            "method": s["method"],
            "lam": s["lam"],
            "acc_a_before": float(R[0, 0]),
            "acc_a_after": float(R[1, 0]),
            "acc_a": float(R[1, 0]),
            "acc_b": float(R[1, 1]),
            "tasks": [a, b],
            **{k: s[k] for k in ("model", "epochs_a", "epochs_b", "fisher", "fisher_samples",
                                 "lr", "width")},
        }
        self.results.append(row)
        self.result.value = (
            f"<b>Run {run}</b> ({html.escape(method_text(s))}): task A ({html.escape(a)}) "
            f"{percent_text(row['acc_a_before'])} → "
            f"<b>{percent_text(row['acc_a_after'])}</b> after "
            f"learning task B ({html.escape(b)}: <b>{percent_text(row['acc_b'])}</b>)"
        )

