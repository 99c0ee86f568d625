"""``ewclab demo``: the original notes' ``demo.py -e 50 [--ewc]`` as a command; ``ewclab
sweep``: the whole λ trade-off at once (every λ trained side by side).

Train task A (MNIST), then task B (Fashion-MNIST), and print how task A's accuracy fares:
it collapses with plain training and survives with ``--ewc``.

λ, learning rate, epochs and width default to the row of :func:`ewclab.settings.defaults`
for the chosen ``--tasks``, ``--model`` and method. Exit status: 0 on success; 2 for a
usage error, found before any training; 1 when a run stops with one line on stderr: a
``--lambda``/``--lr`` that the stability bound lr·λ·max F < 2(1 + momentum) predicts will
make SGD diverge (refused once the Fisher of the task before is known, before the next
task trains), a step that diverged anyway, or results that could not be written; 130
when interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ewclab.experiment import DEFAULTS, METHODS, MODELS, Point, TaskACache
from ewclab.fisher import KINDS
from ewclab.settings import defaults, offered
from ewclab.validation import check_seed

__all__ = ["main"]


def _positive(kind: type) -> callable:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a positive {kind.__name__}, got {text!r}"
            ) from None
        if not 0 < value < math.inf:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def _seed(text: str) -> int:
    try:
        return check_seed(int(text), none_ok=False)
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 0 to 2**64 - 1, got {text!r}"
        ) from None


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show "(default: X)" only for options whose default is a value, not None or False."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ewclab", description="Catastrophic forgetting and EWC, hands on."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="train task A then task B, with or without EWC, and compare",
        description=(
            "Train task A (MNIST) then task B (Fashion-MNIST) on the bundled data and print "
            "task A's accuracy after A and after B, and task B's after B. Without --ewc task "
            "A is forgotten; with --ewc it is kept. Other --tasks sequences, --model networks "
            "and --method penalties work at their own defaults. Replaces "
            "'python3 demo.py -e 50 [--ewc]' of the notes this lab grew from."
        ),
        epilog="λ, lr, epochs and width default to the row of ewclab.settings for --tasks, "
        "--model and the method. Exit status: 0 done; 2 usage error (before any training); "
        "1 the run stopped with one line on stderr (a --lambda/--lr past the stability "
        "bound, refused before the next task trains; a step that diverged; results not "
        "written); 130 interrupted.",
        formatter_class=_Formatter,
    )
    d = DEFAULTS
    demo.add_argument(
        "-e", "--epochs", type=_positive(float), default=None,
        help=f"passes over each task's training set (default {d['epochs']} for the "
        "mnist->fashion MLP; every --tasks/--model has its own in ewclab.settings; the "
        "notebooks' epoch sliders mean the same; the original notes' demo.py used -e loosely "
        "for partial_fit iterations)",
    )
    demo.add_argument(
        "--epochs-b", type=_positive(float), default=None,
        help="passes over the training set of task B and later tasks (default: --epochs)",
    )
    demo.add_argument("--ewc", action="store_true", help="consolidate with EWC after each task")
    demo.add_argument(
        "--method", choices=sorted(METHODS), default=None,
        help="training method (--ewc is --method ewc); default sgd, i.e. no penalty. si "
        "(synaptic intelligence) and mas (memory aware synapses) use the same penalty with "
        "their own importance; replay mixes stored samples of earlier tasks into every "
        "step. Offered where ewclab.settings has measured defaults: si, mas and replay with "
        "--tasks split and the mlp",
    )
    demo.add_argument(
        "--lambda", dest="lam", type=_non_negative, default=None,
        help=f"penalty strength λ, penalty = λ/2 Σ F_i (θ_i - θ*_i)² (default: the settings "
        f"table's for --tasks, --model and the method, e.g. {d['lam']:g} for EWC on "
        "mnist->fashion with the MLP). SGD stays stable only while lr·λ·max F < "
        "2(1 + momentum) = 3.8: a λ past that is refused once task A's Fisher is known "
        "(exit status 1)",
    )
    demo.add_argument("--model", choices=sorted(MODELS), default=d["model"], help="network")
    demo.add_argument(
        "--width", type=_positive(float), default=None,
        help=f"mlp: units per hidden layer (default {d['width']}); alexnet, testnet: channel "
        "scale (default: the settings table's)",
    )
    demo.add_argument(
        "--lr", type=_positive(float), default=None,
        help=f"learning rate (default: the settings table's, {d['lr']:g} for the MLP)",
    )
    demo.add_argument(
        "--batch-size", type=_positive(int), default=None,
        help=f"samples per step (default: the settings table's, {d['batch_size']} for the MLP)",
    )
    demo.add_argument(
        "--fisher", choices=KINDS, default=None,
        help="Fisher kind: exact (labels weighted by the model's prediction), empirical "
        "(true labels; it all but vanishes on samples the model has learned by heart, so "
        "long runs need a much larger λ) or sampled (one label drawn per sample); default: "
        f"the settings table's ({d['fisher']} for the MLP)",
    )
    demo.add_argument(
        "--fisher-samples", type=_positive(int), default=None,
        help="training samples per task kept for its Fisher (default: the settings table's, "
        f"{d['fisher_samples']} for the MLP)",
    )
    demo.add_argument(
        "--tasks", default=d["tasks"],
        help="task sequence of two or more tasks: mnist->fashion, fashion->mnist, "
        "permuted:T (T >= 2) or split (split MNIST, five two-digit tasks; see --scenario)",
    )
    demo.add_argument(
        "--scenario", choices=("task", "domain", "class"), default=None,
        help="with --tasks split: task-incremental (a head per task, the task label given "
        "at test time), domain-incremental (one 2-way head; what plain 'split' means) or "
        "class-incremental (one 10-way head, no task label)",
    )
    demo.add_argument(
        "--full-data", metavar="ROOT", default=None,
        help="use the full 60k/10k datasets found under ROOT instead of the bundled subsets",
    )
    demo.add_argument(
        "--seed", type=_seed, default=d["seed"],
        help="random seed of the weights, the batch order and the sampled Fisher",
    )
    demo.add_argument("--plot", metavar="PNG", help="save the accuracy curves to this file")
    demo.add_argument(
        "--json", metavar="JSON",
        help="save settings and accuracy matrix here; '-' writes them to standard output "
        "(the table then goes to standard error)",
    )
    demo.add_argument(
        "--threads", type=_positive(int), default=1,
        help="torch CPU threads; 1 by default: on a 2-core machine shared with other jobs the "
        "demo took 27 s with 1 thread and 207 s with 2 (benchmarks/RESULTS.md section 8); "
        "more threads can help on an idle machine with many cores",
    )
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    demo.add_argument(
        "-v", "--verbose", action="count", default=0,
        help="log to stderr: -v task boundaries, consolidations and evaluations (INFO), "
        "-vv also every step's loss (DEBUG)",
    )
    _sweep_parser(commands)
    return parser


def _method(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    if args.ewc and args.method not in (None, "ewc"):
        parser.error(f"--ewc contradicts --method {args.method}")
    method = "ewc" if args.ewc else (args.method or "sgd")
    if method in ("sgd", "replay") and args.lam not in (None, 0.0):
        parser.error(f"--lambda needs a penalty, and {method} has none: add --ewc (or "
                     "--method l2 / online-ewc / si / mas)")
    return method


def _tasks(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """The scenario name of --tasks and --scenario (``"split:class"``)."""
    if args.scenario is None:
        return args.tasks
    if args.tasks.strip().lower() not in ("split", "split-fashion"):
        parser.error(f"--scenario needs --tasks split (or split-fashion), got --tasks "
                     f"{args.tasks}")
    return f"{args.tasks.strip().lower()}:{args.scenario}"


def _check_outputs(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Refuse --plot / --json paths that could not be written, before any training."""
    for option, path in (("--plot", args.plot), ("--json", args.json)):
        if path is None or (option == "--json" and path == "-"):
            continue
        folder = Path(path).resolve().parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            parser.error(f"{option} {path}: {folder} is not a writable folder")
        if Path(path).is_dir():
            parser.error(f"{option} {path}: is a folder, expected a file name")
    if args.plot is not None:
        from matplotlib.backend_bases import FigureCanvasBase

        formats = FigureCanvasBase.get_supported_filetypes()
        suffix = Path(args.plot).suffix.lstrip(".").lower()
        if suffix not in formats:
            parser.error(
                f"--plot {args.plot}: expected a file name ending in one of "
                f"{', '.join('.' + f for f in sorted(formats))} (e.g. curves.png)"
            )


#: A task whose accuracy right after training it is below chance + this was never learned.
LEARNED_MARGIN = 0.10


def _table(history, chance: Sequence[float]) -> str:
    """The accuracy matrix as text, then the forgetting (or why it means nothing).

    ``chance`` holds each task's chance accuracy (1 / its classes): a task that ends its own
    training below chance + :data:`LEARNED_MARGIN` was never learned, and its "drop" is
    reported as such instead of as a number that reads like success.
    """
    from ewclab.metrics import average_accuracy, backward_transfer, forgetting

    names, R = history.tasks, history.accuracy_matrix
    width = max(len(n) for n in names) + 2
    head = "".ljust(width) + "".join(f"after {n}".rjust(width + 6) for n in names)
    lines = ["test accuracy", head]
    for j, name in enumerate(names):
        cells = "".join(_pct(R[i, j]).rjust(width + 6) for i in range(len(names)))
        lines.append(name.ljust(width) + cells)
    if np.isnan(R[-1]).any():
        lines.append("(stopped early)")
        return "\n".join(lines)
    unlearned = [j for j in range(len(names)) if R[j, j] < chance[j] + LEARNED_MARGIN]
    if len(names) == 2:
        drop = 100 * (R[0, 0] - R[1, 0])
        lines += [
            "",
            f"task A ({names[0]}) after A:  {_pct(R[0, 0])}",
            f"task A ({names[0]}) after B:  {_pct(R[1, 0])}"
            + ("" if 0 in unlearned else f"   (drop {drop:.1f} points)"),
            f"task B ({names[1]}) after B:  {_pct(R[1, 1])}",
        ]
    else:
        lines += [
            "",
            f"average accuracy {_pct(average_accuracy(R))}, "
            f"backward transfer {100 * backward_transfer(R):+.1f} points, "
            f"forgetting {100 * forgetting(R):.1f} points",
        ]
    for j in unlearned:
        task = f"task {'AB'[j]}" if len(names) == 2 else "task"
        lines.append(
            f"{task} ({names[j]}) was never learned: {_pct(R[j, j])} right after training it, "
            f"near chance ({_pct(chance[j])})"
            + (", so there was nothing to forget" if j < len(names) - 1 else "")
            + "; try more --epochs or another --lr"
        )
    return "\n".join(lines)


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{100 * x:.1f}%"


def _demo(args: argparse.Namespace, parser: argparse.ArgumentParser, cache) -> int:
    from tqdm.auto import tqdm

    from ewclab.experiment import plan, run_plan
    from ewclab.scenarios import get_scenario

    method = _method(args, parser)
    _check_outputs(args, parser)
    if args.width is not None and args.model == "mlp" and not args.width.is_integer():
        parser.error(f"--width: mlp needs a whole number of units, got {args.width:g}")
    source = "bundled" if args.full_data is None else "full"
    spec = _tasks(args, parser)
    try:
        tasks = get_scenario(spec, source=source, root=args.full_data)
    except (ValueError, FileNotFoundError, TypeError) as err:
        parser.error(f"--tasks {args.tasks}: {err}")
    methods = offered(tasks, args.model)
    if method not in methods:
        parser.error(f"--method {method}: ewclab.settings has no measured defaults for it with "
                     f"--tasks {spec} and --model {args.model}; offered there: "
                     + (", ".join(methods) if methods else "none"
                        + (" (try --model mlp)" if offered(tasks, "mlp") else "")))
    if len(tasks) < 2:  # forgetting needs a task after the first
        parser.error(
            f"--tasks {args.tasks}: expected a sequence of at least two tasks such as "
            "'mnist->fashion', 'fashion->mnist', 'permuted:5' or 'split'"
        )
    epochs = None
    if args.epochs is not None or args.epochs_b is not None:
        epochs_a = defaults(tasks, args.model, method).epochs if args.epochs is None \
            else args.epochs
        epochs = [epochs_a] + [args.epochs_b or epochs_a] * (len(tasks) - 1)
    try:
        p = plan(tasks, model=args.model, method=method, lam=args.lam, epochs=epochs,
                 fisher=args.fisher, fisher_samples=args.fisher_samples, seed=args.seed,
                 width=args.width, lr=args.lr, batch_size=args.batch_size)
    except (TypeError, ValueError) as err:
        parser.error(str(err))
    if not args.quiet:
        print(
            f"{' -> '.join(p.names)} | {args.model} | "
            f"{method}" + (f", λ = {p.lam:g}" if p.mode is not None else "")
            + ("" if p.replay_samples is None else f", {p.replay_samples} samples per task")
            + (f" | {p.scenario.split(':')[1]}-incremental" if ":" in p.scenario else "")
            + " | "
            f"epochs {'/'.join(f'{e:g}' for e in p.epochs)}",
            file=sys.stderr,
        )
    bar = tqdm(total=p.steps(), unit="step", file=sys.stderr, disable=args.quiet, leave=False)

    def progress(point: Point) -> None:
        bar.update(point.step - bar.n)
        bar.set_postfix_str(
            " ".join(f"{n}={100 * a:.0f}%" for n, a in point.accuracies.items())
        )

    try:
        history = run_plan(p, callback=progress, cache=cache)
    except KeyboardInterrupt:
        bar.close()
        print("interrupted", file=sys.stderr)
        return 130
    except (FloatingPointError, ValueError) as err:
        # a λ/lr past the stability bound (refused before the next task trains) or a step
        # that diverged anyway: one line, no traceback
        bar.close()
        hint = " (--lambda sets ewc_lambda)" if "ewc_lambda" in str(err) else ""
        print(f"ewclab demo: {err}{hint}", file=sys.stderr)
        return 1
    bar.close()
    table = _table(history, [1 / t.num_classes for t in tasks])
    print(table, file=sys.stderr if args.json == "-" else sys.stdout)
    try:
        _save(history, args)
    except OSError as err:
        print(f"ewclab demo: could not write the results: {err}", file=sys.stderr)
        return 1
    return 0


def _save(history, args: argparse.Namespace) -> None:
    """Write --json (settings, accuracy matrix, curves) and --plot (accuracy curves)."""
    if args.json:
        from ewclab.metrics import average_accuracy

        out = history.to_dict()
        out["average_accuracy"] = average_accuracy(history)
        if args.json == "-":
            json.dump(out, sys.stdout, indent=1)
            print()
        else:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(out, f, indent=1)
    if args.plot:
        from ewclab.plots import plot_accuracy

        plot_accuracy(history).savefig(args.plot, dpi=120, bbox_inches="tight")


# -- ewclab sweep ------------------------------------------------------------------------------
def _sweep_parser(commands) -> None:
    sweep = commands.add_parser(
        "sweep",
        help="train task B for several λ at once and show the trade-off",
        description=(
            "Train task A once, then task B for every λ of --lambdas side by side (one "
            "batched pass per step, each λ's result equal to its own 'ewclab demo' run), "
            "and print task A after B and task B for each λ: the stability-plasticity "
            "trade-off. --plot draws it as a curve, one point per λ."
        ),
        epilog="Exit status: 0 done; 2 usage error (before any training); 1 a λ past the "
        "stability bound (refused once task A's Fisher is known), a step that diverged, or "
        "results not written; 130 interrupted.",
        formatter_class=_Formatter,
    )
    sweep.add_argument(
        "--lambdas", default=None,
        help="λ values separated by commas, e.g. 0,10,100,1000 (default: 0 and two decades "
        "up to the settings table's λ for --tasks, --model and --method)",
    )
    sweep.add_argument("--method", choices=("ewc", "l2", "online-ewc"), default="ewc",
                       help="the penalty λ scales")
    sweep.add_argument("--model", choices=sorted(MODELS), default=DEFAULTS["model"],
                       help="network")
    sweep.add_argument("--tasks", default=DEFAULTS["tasks"],
                       help="task sequence of two or more tasks (as for ewclab demo)")
    sweep.add_argument("-e", "--epochs", type=_positive(float), default=None,
                       help="passes over each task's training set (default: the table's)")
    sweep.add_argument("--seed", type=_seed, default=DEFAULTS["seed"], help="random seed")
    sweep.add_argument("--plot", metavar="PNG", help="save the trade-off curve to this file")
    sweep.add_argument("--json", metavar="JSON",
                       help="save lambdas and one accuracy_matrix per λ here ('-': stdout)")
    sweep.add_argument("--threads", type=_positive(int), default=1, help="torch CPU threads")
    sweep.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sweep.add_argument("-v", "--verbose", action="count", default=0,
                       help="log to stderr (-v INFO, -vv DEBUG)")


def _sweep(args: argparse.Namespace, parser: argparse.ArgumentParser, cache) -> int:
    from tqdm.auto import tqdm

    from ewclab.experiment import plan, sweep
    from ewclab.tradeoff import lam_grid, parse_lams

    _check_outputs(args, parser)
    try:
        p = plan(args.tasks, model=args.model, method=args.method, epochs=args.epochs,
                 seed=args.seed)
    except (TypeError, ValueError, FileNotFoundError) as err:
        parser.error(f"--tasks {args.tasks}: {err}")
    if len(p.tasks) < 2:
        parser.error(f"--tasks {args.tasks}: expected a sequence of at least two tasks")
    try:
        lams = lam_grid(p.lam) if args.lambdas is None else parse_lams(args.lambdas, "--lambdas")
    except ValueError as err:
        parser.error(str(err))
    if not args.quiet:
        print(f"{' -> '.join(p.names)} | {args.model} | {args.method}, λ = "
              f"{', '.join(f'{lam:g}' for lam in lams)} | epochs "
              f"{'/'.join(f'{e:g}' for e in p.epochs)}", file=sys.stderr)
    bar = tqdm(total=p.steps(), unit="step", file=sys.stderr, disable=args.quiet, leave=False)
    try:
        histories = sweep(lams, p.tasks, args.model, args.method, epochs=p.epochs,
                          seed=args.seed, cache=cache,
                          callback=lambda point: bar.update(point.step - bar.n))
    except KeyboardInterrupt:
        bar.close()
        print("interrupted", file=sys.stderr)
        return 130
    except (FloatingPointError, ValueError) as err:
        bar.close()
        print(f"ewclab sweep: {err}", file=sys.stderr)
        return 1
    bar.close()
    a, b = p.names[0], p.names[-1]
    rows = [f"{'λ':>10}  {a + ' after ' + b:>24}  {b:>14}"]
    rows += [f"{lam:>10g}  {_pct(h.accuracy_matrix[-1, 0]):>24}  "
             f"{_pct(h.accuracy_matrix[-1, -1]):>14}" for lam, h in zip(lams, histories,
                                                                       strict=True)]
    print("\n".join(rows), file=sys.stderr if args.json == "-" else sys.stdout)
    try:
        _save_sweep(lams, histories, args, 1 / p.tasks[0].num_classes)
    except OSError as err:
        print(f"ewclab sweep: could not write the results: {err}", file=sys.stderr)
        return 1
    return 0


def _save_sweep(lams: list[float], histories: list, args: argparse.Namespace,
                chance: float) -> None:
    """Write --json (lambdas, one accuracy matrix per λ) and --plot (the trade-off curve),
    each through a temporary file in the same folder (never a half-written file)."""
    if args.json:
        first = dict(histories[0].settings)
        first.pop("lam", None)
        out = {"tasks": histories[0].tasks, "method": first["method"], "lambdas": lams,
               "accuracy_matrix": [h.accuracy_matrix.tolist() for h in histories],
               "settings": first}
        if args.json == "-":
            json.dump(out, sys.stdout, indent=1)
            print()
        else:
            _atomic(args.json, lambda f: f.write(json.dumps(out, indent=1).encode()))
    if args.plot:
        from ewclab.plots.pareto import plot_pareto
        from ewclab.tradeoff import tradeoff_points

        names = histories[0].tasks
        fig = plot_pareto({args.method: tradeoff_points(lams, histories)},
                          tasks=(names[0], names[-1]), chance=chance)
        suffix = Path(args.plot).suffix.lstrip(".").lower()
        _atomic(args.plot, lambda f: fig.savefig(f, format=suffix, dpi=120,
                                                 bbox_inches="tight"))


def _atomic(path: str, write) -> None:
    import tempfile

    folder = Path(path).resolve().parent
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".ewclab-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _log_to_stderr(verbosity: int) -> None:
    """Send the ``ewclab`` logger to stderr at INFO (1) or DEBUG (2 or more).

    The handler stays until the next :func:`main` (usually the end of the process), which
    replaces it, or removes it and the level it set when run without ``-v``.
    """
    logger = logging.getLogger("ewclab")
    for handler in [h for h in logger.handlers if h.get_name() == "ewclab-cli"]:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    if verbosity:
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name("ewclab-cli")
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO if verbosity == 1 else logging.DEBUG)


def main(argv: Sequence[str] | None = None, *, cache: TaskACache | None = None) -> int:
    """Run the ``ewclab`` command line; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).
    cache : TaskACache, optional
        Task-A cache shared between calls in one process (tests, notebooks).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    _log_to_stderr(args.verbose)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return (_sweep if args.command == "sweep" else _demo)(args, parser, cache)
    finally:
        torch.set_num_threads(threads)
