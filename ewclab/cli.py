"""``ewclab demo``: the seed's ``demo.py -e 50 [--ewc]`` as a command.

Train task A (MNIST), then task B (Fashion-MNIST), and print how task A's accuracy fares:
it collapses with plain training and survives with ``--ewc``.
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

from ewclab.experiment import DEFAULT_LAM, DEFAULTS, METHODS, MODELS, Point, TaskACache
from ewclab.fisher import KINDS

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
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


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
            "A is forgotten; with --ewc it is kept. Replaces the seed's "
            "'python3 demo.py -e 50 [--ewc]'."
        ),
        formatter_class=_Formatter,
    )
    d = DEFAULTS
    demo.add_argument(
        "-e", "--epochs", type=_positive(float), default=d["epochs"],
        help="passes over each task's training set (the notebooks' epoch sliders mean the "
        "same; the seed's demo.py used -e loosely for partial_fit iterations)",
    )
    demo.add_argument(
        "--epochs-b", type=_positive(float), default=None,
        help="passes over the training set of task B and later tasks (default: --epochs)",
    )
    demo.add_argument("--ewc", action="store_true", help="consolidate with EWC after each task")
    demo.add_argument(
        "--method", choices=sorted(METHODS), default=None,
        help="training method (--ewc is --method ewc); default sgd, i.e. no penalty",
    )
    demo.add_argument(
        "--lambda", dest="lam", type=_non_negative, default=None,
        help=f"penalty strength λ, penalty = λ/2 Σ F_i (θ_i - θ*_i)² (default {d['lam']:g} for "
        f"EWC, {DEFAULT_LAM['l2']:g} for l2). Too large a λ makes SGD diverge (the run stops "
        "and says so): it needs lr·λ·max F < 2(1 + momentum) = 3.8",
    )
    demo.add_argument("--model", choices=sorted(MODELS), default=d["model"], help="network")
    demo.add_argument(
        "--width", type=_positive(float), default=None,
        help=f"mlp: units per hidden layer (default {d['width']}); alexnet: channel scale "
        "(default 1.0); testnet has a fixed size",
    )
    demo.add_argument("--lr", type=_positive(float), default=d["lr"], help="learning rate")
    demo.add_argument(
        "--batch-size", type=_positive(int), default=d["batch_size"], help="samples per step"
    )
    demo.add_argument(
        "--fisher", choices=KINDS, default=d["fisher"],
        help="Fisher kind: exact (labels weighted by the model's prediction), empirical "
        "(true labels; it all but vanishes on samples the model has learned by heart, so "
        "long runs need a much larger λ) or sampled (one label drawn per sample)",
    )
    demo.add_argument(
        "--fisher-samples", type=_positive(int), default=d["fisher_samples"],
        help="training samples per task kept for its Fisher",
    )
    demo.add_argument(
        "--tasks", default=d["tasks"],
        help="task sequence: mnist->fashion, fashion->mnist, permuted:T or split",
    )
    demo.add_argument(
        "--full-data", metavar="ROOT", default=None,
        help="use the full 60k/10k datasets found under ROOT instead of the bundled subsets",
    )
    demo.add_argument("--seed", type=_seed, default=d["seed"], help="random seed")
    demo.add_argument("--plot", metavar="PNG", help="save the accuracy curves to this file")
    demo.add_argument("--json", metavar="JSON", help="save settings and accuracy matrix here")
    demo.add_argument(
        "--threads", type=_positive(int), default=None,
        help="torch CPU threads (default: torch's choice, one per core); on a CPU shared with "
        "other jobs 1 can be several times faster",
    )
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    demo.add_argument(
        "-v", "--verbose", action="count", default=0,
        help="log to stderr: -v task boundaries, consolidations and evaluations (INFO), "
        "-vv also every step's loss (DEBUG)",
    )
    return parser


def _method(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    if args.ewc and args.method not in (None, "ewc"):
        parser.error(f"--ewc contradicts --method {args.method}")
    method = "ewc" if args.ewc else (args.method or "sgd")
    if method == "sgd" and args.lam not in (None, 0.0):
        parser.error("--lambda needs a penalty: add --ewc (or --method l2 / online-ewc)")
    return method


def _check_outputs(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Refuse --plot / --json paths that could not be written, before any training."""
    for option, path in (("--plot", args.plot), ("--json", args.json)):
        if path is None:
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


def _table(history) -> str:
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
    if len(names) == 2:
        drop = 100 * (R[0, 0] - R[1, 0])
        lines += [
            "",
            f"task A ({names[0]}) after A:  {_pct(R[0, 0])}",
            f"task A ({names[0]}) after B:  {_pct(R[1, 0])}   (drop {drop:.1f} points)",
            f"task B ({names[1]}) after B:  {_pct(R[1, 1])}",
        ]
    else:
        lines += [
            "",
            f"average accuracy {_pct(average_accuracy(R))}, "
            f"backward transfer {100 * backward_transfer(R):+.1f} points, "
            f"forgetting {100 * forgetting(R):.1f} points",
        ]
    return "\n".join(lines)


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{100 * x:.1f}%"


def _demo(args: argparse.Namespace, parser: argparse.ArgumentParser, cache) -> int:
    from tqdm.auto import tqdm

    from ewclab.experiment import run_sequence, steps_for
    from ewclab.scenarios import get_scenario

    method = _method(args, parser)
    _check_outputs(args, parser)
    if args.width is not None and args.model == "testnet":
        parser.error("--width: testnet has a fixed size")
    if args.width is not None and args.model == "mlp" and not args.width.is_integer():
        parser.error(f"--width: mlp needs a whole number of units, got {args.width:g}")
    source = "bundled" if args.full_data is None else "full"
    try:
        tasks = get_scenario(args.tasks, source=source, root=args.full_data)
    except (ValueError, FileNotFoundError, TypeError) as err:
        parser.error(f"--tasks {args.tasks}: {err}")
    epochs = [args.epochs] + [args.epochs_b or args.epochs] * (len(tasks) - 1)
    total = sum(steps_for(t, e, args.batch_size) for t, e in zip(tasks, epochs, strict=True))
    lam = DEFAULT_LAM[method] if args.lam is None else args.lam
    if not args.quiet:
        print(
            f"{' -> '.join(t.name for t in tasks)} | {args.model} | "
            f"{method}" + ("" if method == "sgd" else f", λ = {lam:g}") + " | "
            f"epochs {'/'.join(f'{e:g}' for e in epochs)}",
            file=sys.stderr,
        )
    bar = tqdm(total=total, unit="step", file=sys.stderr, disable=args.quiet, leave=False)

    def progress(point: Point) -> None:
        bar.update(point.step - bar.n)
        bar.set_postfix_str(
            " ".join(f"{n}={100 * a:.0f}%" for n, a in point.accuracies.items())
        )

    try:
        history = run_sequence(
            tasks, model=args.model, method=method, lam=lam, epochs=epochs,
            fisher=args.fisher, fisher_samples=args.fisher_samples, seed=args.seed,
            callback=progress, width=args.width, lr=args.lr, batch_size=args.batch_size,
            cache=cache,
        )
    except KeyboardInterrupt:
        bar.close()
        print("interrupted", file=sys.stderr)
        return 130
    except FloatingPointError as err:  # lr * λ too large: partial_fit refused a step
        bar.close()
        print(
            f"ewclab demo: {err}\nSGD stays stable on the penalty only while "
            "lr·λ·max F < 3.8, and the default λ was chosen for mnist->fashion: try a "
            "smaller --lambda (benchmarks/RESULTS.md lists λ that work for each --tasks).",
            file=sys.stderr,
        )
        return 1
    bar.close()
    print(_table(history))
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
    if args.threads is None:
        return _demo(args, parser, cache)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _demo(args, parser, cache)
    finally:
        torch.set_num_threads(threads)
