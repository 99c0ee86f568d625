"""``ewclab demo``: train a task sequence with or without a penalty and print what it did to
the first task (``ewclab demo -e 50 --ewc``); ``ewclab sweep`` (:mod:`ewclab.cli_sweep`):
the whole λ trade-off at once (every λ trained side by side).

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
import sys
from collections.abc import Sequence

import numpy as np

from ewclab import cli_sweep
from ewclab.cli_args import (
    Formatter,
    check_outputs,
    non_negative,
    pct,
    positive,
    run_reported,
    seed,
)
from ewclab.experiment import DEFAULTS, METHODS, MODELS, Point, TaskACache
from ewclab.fisher import KINDS
from ewclab.settings import defaults, offered

__all__ = ["main"]


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
        formatter_class=Formatter,
    )
    d = DEFAULTS
    demo.add_argument(
        "-e", "--epochs", type=positive(float), default=None,
        help=f"passes over each task's training set (default {d['epochs']} for the "
        "mnist->fashion MLP; every --tasks/--model has its own in ewclab.settings; the "
        "notebooks' epoch sliders mean the same; the original notes' demo.py used -e loosely "
        "for partial_fit iterations)",
    )
    demo.add_argument(
        "--epochs-b", type=positive(float), default=None,
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
        "--lambda", dest="lam", type=non_negative, default=None,
        help=f"penalty strength λ, penalty = λ/2 Σ F_i (θ_i - θ*_i)² (default: the settings "
        f"table's for --tasks, --model and the method, e.g. {d['lam']:g} for EWC on "
        "mnist->fashion with the MLP). SGD stays stable only while lr·λ·max F < "
        "2(1 + momentum) = 3.8: a λ past that is refused once task A's Fisher is known "
        "(exit status 1)",
    )
    demo.add_argument("--model", choices=sorted(MODELS), default=d["model"], help="network")
    demo.add_argument(
        "--width", type=positive(float), default=None,
        help=f"mlp: units per hidden layer (default {d['width']}); alexnet, testnet: channel "
        "scale (default: the settings table's)",
    )
    demo.add_argument(
        "--lr", type=positive(float), default=None,
        help=f"learning rate (default: the settings table's, {d['lr']:g} for the MLP)",
    )
    demo.add_argument(
        "--batch-size", type=positive(int), default=None,
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
        "--fisher-samples", type=positive(int), default=None,
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
        "--seed", type=seed, default=d["seed"],
        help="random seed of the weights, the batch order and the sampled Fisher",
    )
    demo.add_argument("--plot", metavar="PNG", help="save the accuracy curves to this file")
    demo.add_argument(
        "--json", metavar="JSON",
        help="save settings and accuracy matrix here; '-' writes them to standard output "
        "(the table then goes to standard error)",
    )
    demo.add_argument(
        "--threads", type=positive(int), default=1,
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
    cli_sweep.add_parser(commands)
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
        cells = "".join(pct(R[i, j]).rjust(width + 6) for i in range(len(names)))
        lines.append(name.ljust(width) + cells)
    if np.isnan(R[-1]).any():
        lines.append("(stopped early)")
        return "\n".join(lines)
    unlearned = [j for j in range(len(names)) if R[j, j] < chance[j] + LEARNED_MARGIN]
    if len(names) == 2:
        drop = 100 * (R[0, 0] - R[1, 0])
        lines += [
            "",
            f"task A ({names[0]}) after A:  {pct(R[0, 0])}",
            f"task A ({names[0]}) after B:  {pct(R[1, 0])}"
            + ("" if 0 in unlearned else f"   (drop {drop:.1f} points)"),
            f"task B ({names[1]}) after B:  {pct(R[1, 1])}",
        ]
    else:
        lines += [
            "",
            f"average accuracy {pct(average_accuracy(R))}, "
            f"backward transfer {100 * backward_transfer(R):+.1f} points, "
            f"forgetting {100 * forgetting(R):.1f} points",
        ]
    for j in unlearned:
        task = f"task {'AB'[j]}" if len(names) == 2 else "task"
        lines.append(
            f"{task} ({names[j]}) was never learned: {pct(R[j, j])} right after training it, "
            f"near chance ({pct(chance[j])})"
            + (", so there was nothing to forget" if j < len(names) - 1 else "")
            + "; try more --epochs or another --lr"
        )
    return "\n".join(lines)


def _demo(args: argparse.Namespace, parser: argparse.ArgumentParser, cache) -> int:
    from tqdm.auto import tqdm

    from ewclab.experiment import plan, run_plan
    from ewclab.scenarios import get_scenario

    method = _method(args, parser)
    check_outputs(args, parser)
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

    history, code = run_reported(
        "ewclab demo", bar, lambda: run_plan(p, callback=progress, cache=cache),
        hint=lambda message: " (--lambda sets ewc_lambda)" if "ewc_lambda" in message else "",
    )
    if code:
        return code
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
        return (cli_sweep.run if args.command == "sweep" else _demo)(args, parser, cache)
    finally:
        torch.set_num_threads(threads)
