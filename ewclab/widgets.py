"""Jupyter dashboards: the EWC playground (sliders, Run/Stop, live plot) and a Fisher explorer.

>>> from ewclab.widgets import EWCPlayground
>>> playground = EWCPlayground()      # doctest: +SKIP
>>> playground                        # doctest: +SKIP   (shows the dashboard)

The widgets are thin: a run calls :func:`ewclab.experiment.run_sequence` in a background
thread (so Stop works and the kernel stays free) and draws with :mod:`ewclab.plots`. A
:class:`~ewclab.experiment.TaskACache` keeps the model trained on task A, so moving λ or
task B's epochs re-trains task B only. Every callback can be driven without a browser:
set a control's ``.value``, call ``run_button.click()``, then ``wait()``.
"""

from __future__ import annotations

import base64
import html
import io
import math
import numbers
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as w
import torch
from matplotlib.figure import Figure

from ewclab import plots
from ewclab.data import Task
from ewclab.experiment import DEFAULTS, Point, TaskACache, run_sequence, steps_for
from ewclab.fisher import KINDS
from ewclab.history import History
from ewclab.scenarios import get_scenario

__all__ = ["EWCPlayground", "FisherExplorer"]

#: Task pairs offered by the playground (scenario names of :func:`ewclab.scenarios.get_scenario`).
TASK_PAIRS = ("mnist->fashion", "fashion->mnist")
#: Models offered by the playground (small enough for a laptop CPU).
MODEL_CHOICES = ("mlp", "testnet")
#: Fisher sample counts offered by the playground.
FISHER_SAMPLES = (100, 300, 1000, 3000)
#: λ slider range, as powers of ten.
LAM_EXPONENTS = (0.0, 5.0)
#: Most epochs per task offered by the sliders.
MAX_EPOCHS = 20


def _png_output(fig: Figure, dpi: int = 80) -> dict:
    """A figure as one Jupyter ``display_data`` output (PNG), ready for ``Output.outputs``.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        Rendered with ``savefig`` (no pyplot involved, nothing left open).
    dpi : int
        Resolution of the PNG.

    Returns
    -------
    dict
        ``{"output_type": "display_data", "data": {"image/png": base64, ...}, ...}``.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    png = base64.b64encode(buffer.getvalue()).decode("ascii")
    return {
        "output_type": "display_data",
        "data": {"image/png": png, "text/plain": "<Figure>"},
        "metadata": {},
    }


def _show(out: w.Output, fig: Figure) -> None:
    """Replace what ``out`` shows by ``fig``, in one state update.

    Assigning ``outputs`` is what ``clear_output(wait=True)`` + ``append_display_data``
    amount to, without flicker and without the ``with out:`` context that is unsafe from
    a worker thread (it would capture whatever the kernel's current cell prints).
    """
    out.outputs = (_png_output(fig),)


def _check_options(
    model: str, lam: float, epochs_a: int, epochs_b: int, fisher: str, fisher_samples: int,
    cache: TaskACache | None,
) -> None:
    """Raise ValueError/TypeError, saying what was expected, for a bad playground setting."""
    if model not in MODEL_CHOICES:
        raise ValueError(f"model must be one of {list(MODEL_CHOICES)}, got {model!r}")
    lo, hi = 10 ** LAM_EXPONENTS[0], 10 ** LAM_EXPONENTS[1]
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real):
        raise TypeError(f"lam must be a number, got {type(lam).__name__}: {lam!r}")
    if not (lam == 0 or lo <= lam <= hi):
        raise ValueError(f"lam must be 0 (no EWC) or in [{lo:g}, {hi:g}], got {lam!r}")
    counts = {"epochs_a": epochs_a, "epochs_b": epochs_b, "fisher_samples": fisher_samples}
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}: {value!r}")
    for name, value in (("epochs_a", epochs_a), ("epochs_b", epochs_b)):
        if not 1 <= value <= MAX_EPOCHS:
            raise ValueError(f"{name} must be in [1, {MAX_EPOCHS}], got {value!r}")
    if fisher_samples < 1:
        raise ValueError(f"fisher_samples must be >= 1, got {fisher_samples}")
    if fisher not in KINDS:
        raise ValueError(f"fisher must be one of {list(KINDS)}, got {fisher!r}")
    if cache is not None and not isinstance(cache, TaskACache):
        raise TypeError(f"cache must be a TaskACache or None, got {type(cache).__name__}")


def _how(s: Mapping) -> str:
    """The method of a run's settings, in words."""
    return f"EWC λ = {s['lam']:.4g}" if s["method"] == "ewc" else "plain SGD (λ = 0)"


def _percent(x: float) -> str:
    return "–" if math.isnan(x) else f"{100 * x:.1f}%"


class EWCPlayground:
    """Train task A then task B with or without EWC, live, from sliders and buttons.

    Parameters
    ----------
    tasks : str or sequence of Task
        A task pair from :data:`TASK_PAIRS`, or two :class:`~ewclab.data.Task` objects
        (offered in the task dropdown as ``"a->b (given)"``, e.g. small tasks for a test).
    model : {"mlp", "testnet"}
        Initial model choice.
    lam : float
        Initial EWC strength λ in [1, 1e5] (penalty = λ/2 Σ F_i (θ_i − θ*_i)²); 0 starts
        with EWC switched off (plain SGD) and the slider at ``DEFAULTS["lam"]``.
    epochs_a, epochs_b : int
        Initial passes over task A and task B (1 to :data:`MAX_EPOCHS`).
    fisher : {"empirical", "exact", "sampled"}
        Initial Fisher kind.
    fisher_samples : int
        Initial number of task-A samples for its Fisher.
    cache : TaskACache, optional
        Shared task-A cache (a new one by default): runs that differ only in λ, the
        method or task B's epochs skip training task A.
    seed : int
        Seed of every run.
    source, root
        Data for the task-pair names (see :func:`ewclab.data.load_task`).

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
        ``epochs_b``, ``fisher``, ``fisher_samples``). Accuracies are fractions.
    error : BaseException or None
        The exception of the last run, if it failed (also shown in the result line).
    lam_slider, ewc_toggle, epochs_a, epochs_b, fisher_kind, fisher_samples, model_choice,
    task_choice, run_button, stop_button, progress, plot, result, log : ipywidgets.Widget
        The controls; ``plot`` (CSS class ``ewclab-plot``) holds the live accuracy PNG,
        ``result`` (class ``ewclab-result``) the result line, ``log`` tracebacks.

    Notes
    -----
    The accuracy plot is redrawn at most every :attr:`redraw_every` seconds during a
    run, and once more when the run ends.
    """

    #: Least time between two live redraws of the accuracy plot, in seconds.
    redraw_every: float = 0.5

    def __init__(
        self,
        tasks: str | Sequence[Task] = DEFAULTS["tasks"],
        model: str = DEFAULTS["model"],
        lam: float = DEFAULTS["lam"],
        epochs_a: int = DEFAULTS["epochs"],
        epochs_b: int = DEFAULTS["epochs"],
        fisher: str = DEFAULTS["fisher"],
        fisher_samples: int = DEFAULTS["fisher_samples"],
        cache: TaskACache | None = None,
        seed: int = DEFAULTS["seed"],
        *,
        source: str = "bundled",
        root: str | None = None,
    ) -> None:
        self._pairs: dict[str, str | list[Task]] = {p: p for p in TASK_PAIRS}
        if isinstance(tasks, str):
            if tasks not in TASK_PAIRS:
                raise ValueError(
                    f"tasks must be one of {list(TASK_PAIRS)} or two Task, got {tasks!r}"
                )
            pair = tasks
        else:
            given = list(tasks) if isinstance(tasks, Sequence) else []
            if len(given) != 2 or not all(isinstance(t, Task) for t in given):
                raise TypeError(
                    f"tasks must be a task-pair name or a list of two Task, got {tasks!r}"
                )
            pair = f"{given[0].name}->{given[1].name} (given)"
            self._pairs[pair] = given
        _check_options(model, lam, epochs_a, epochs_b, fisher, fisher_samples, cache)

        self.cache = TaskACache() if cache is None else cache
        self.seed = seed
        self.source, self.root = source, root
        self.history: History | None = None
        self.results: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self._loaded: dict[str, list[Task]] = {}
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._running = False
        self._thread: threading.Thread | None = None
        self._runs = 0
        self._last_draw = -math.inf
        self._figure: Figure | None = None

        self.task_choice = w.Dropdown(options=list(self._pairs), value=pair, description="tasks")
        self.model_choice = w.Dropdown(options=list(MODEL_CHOICES), value=model,
                                       description="model")
        self.epochs_a = w.IntSlider(value=epochs_a, min=1, max=MAX_EPOCHS, description="epochs A")
        self.epochs_b = w.IntSlider(value=epochs_b, min=1, max=MAX_EPOCHS, description="epochs B")
        self.ewc_toggle = w.Checkbox(value=lam != 0, description="use EWC", indent=False)
        self.lam_slider = w.FloatLogSlider(
            value=lam or DEFAULTS["lam"], base=10, min=LAM_EXPONENTS[0], max=LAM_EXPONENTS[1],
            step=0.1, description="EWC λ", readout_format=".3g", disabled=lam == 0,
        )
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
        self.log = w.Output().add_class("ewclab-log")

        self.ewc_toggle.observe(self._on_toggle, names="value")
        self.run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.stop())
        self.widget = w.VBox([
            w.HBox([self.task_choice, self.model_choice]),
            w.HBox([self.epochs_a, self.epochs_b]),
            w.HBox([self.ewc_toggle, self.lam_slider]),
            w.HBox([self.fisher_kind, self.fisher_samples]),
            w.HBox([self.run_button, self.stop_button, self.progress]),
            self.result,
            self.plot,
            self.log,
        ])

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

    def _on_toggle(self, change: Mapping) -> None:
        self.lam_slider.disabled = not change["new"]

    # ------------------------------------------------------------------ run / stop / wait

    def run(self) -> bool:
        """Start a run with the controls' current values (what clicking Run does).

        Returns
        -------
        bool
            False, doing nothing, when a run is already in progress.
        """
        with self._lock:
            if self._running:
                return False
            self._running = True
        self.run_button.disabled = True
        self._runs += 1
        self._halt.clear()
        self.error = None
        settings = {
            "pair": self.task_choice.value,
            "model": self.model_choice.value,
            "method": self.method,
            "lam": self.lam,
            "epochs_a": int(self.epochs_a.value),
            "epochs_b": int(self.epochs_b.value),
            "fisher": self.fisher_kind.value,
            "fisher_samples": int(self.fisher_samples.value),
        }
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
        return f"{s['pair']}, {s['model']}, epochs {s['epochs_a']}+{s['epochs_b']}, {_how(s)}"

    def _tasks(self, pair: str) -> list[Task]:
        spec = self._pairs[pair]
        if not isinstance(spec, str):
            return spec
        if spec not in self._loaded:
            self._loaded[spec] = get_scenario(spec, source=self.source, root=self.root)
        return self._loaded[spec]

    def _work(self, run: int, s: Mapping) -> None:
        """The worker thread: train, draw, report; always leaves the buttons usable."""
        history = None
        try:
            tasks = self._tasks(s["pair"])
            self.progress.value = 0
            self.progress.max = sum(
                steps_for(t, e, DEFAULTS["batch_size"])
                for t, e in zip(tasks, (s["epochs_a"], s["epochs_b"]), strict=True)
            )
            self._last_draw = -math.inf
            history = run_sequence(
                tasks, s["model"], s["method"], s["lam"], (s["epochs_a"], s["epochs_b"]),
                s["fisher"], s["fisher_samples"], self.seed, callback=self._on_point,
                stop=self._halt.is_set, cache=self.cache,
            )
            self.history = history
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
        except Exception as err:  # shown to the student, never lost
            self.error = err
            self.result.value = html.escape(f"Run {run} failed: {type(err).__name__}: {err}")
            self.log.append_stderr(traceback.format_exc())
            self.progress.bar_style = "danger"
        finally:
            self.stop_button.disabled = True
            with self._lock:
                self._running = False
            self.run_button.disabled = False

    def _on_point(self, point: Point) -> None:
        self.progress.value = min(point.step, self.progress.max)
        if point.history is not None and time.monotonic() - self._last_draw >= self.redraw_every:
            self._draw(point.history)

    def _draw(self, history: History) -> None:
        self._figure = plots.plot_accuracy(history.snapshot(), fig=self._figure)
        _show(self.plot, self._figure)
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
            **{k: s[k] for k in ("model", "epochs_a", "epochs_b", "fisher", "fisher_samples")},
        }
        self.results.append(row)
        self.result.value = (
            f"<b>Run {run}</b> ({html.escape(_how(s))}): task A ({html.escape(a)}) "
            f"{_percent(row['acc_a_before'])} → <b>{_percent(row['acc_a_after'])}</b> after "
            f"learning task B ({html.escape(b)}: <b>{_percent(row['acc_b'])}</b>)"
        )


class FisherExplorer:
    """Pick a layer, see its Fisher heatmap (:func:`ewclab.plots.plot_fisher_layer`).

    Parameters
    ----------
    fisher : dict of str to tensor or array
        A diagonal Fisher, e.g. ``history.fisher["mnist"]``.
    model : torch.nn.Module, optional
        Orders the layer names as the model's parameters.

    Attributes
    ----------
    layer : ipywidgets.Dropdown
        The layer names; changing ``.value`` redraws.
    out : ipywidgets.Output
        Holds the heatmap (CSS class ``ewclab-fisher``).
    widget : ipywidgets.VBox
        The explorer (displaying the explorer displays it).
    """

    def __init__(self, fisher: Mapping[str, Any], model: torch.nn.Module | None = None) -> None:
        if not isinstance(fisher, Mapping) or not fisher:
            raise TypeError("fisher must be a non-empty dict parameter name -> tensor")
        names = list(fisher)
        if model is not None:
            if not isinstance(model, torch.nn.Module):
                raise TypeError(f"model must be a torch Module or None, got {type(model).__name__}")
            order = [n for n, _ in model.named_parameters() if n in fisher]
            names = order + [n for n in names if n not in order]
        self.fisher = fisher
        self.layer = w.Dropdown(options=names, value=names[0], description="layer")
        self.out = w.Output().add_class("ewclab-fisher")
        self.layer.observe(lambda change: self._draw(change["new"]), names="value")
        self.widget = w.VBox([self.layer, self.out])
        self._draw(names[0])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _draw(self, name: str) -> None:
        _show(self.out, plots.plot_fisher_layer(self.fisher, name))
