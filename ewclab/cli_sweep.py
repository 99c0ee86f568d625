"""``ewclab sweep``: train task A once, then task B for every λ side by side, and show the
stability-plasticity trade-off (one point per λ)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ewclab.cli_args import (
    Formatter,
    atomic_write,
    check_outputs,
    pct,
    positive,
    run_reported,
    seed,
)
from ewclab.experiment import DEFAULTS, MODELS


# -- ewclab sweep ------------------------------------------------------------------------------
def add_parser(commands) -> None:
    """Add the ``sweep`` subcommand to ``commands`` (argparse subparsers)."""
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
        formatter_class=Formatter,
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
    sweep.add_argument("-e", "--epochs", type=positive(float), default=None,
                       help="passes over each task's training set (default: the table's)")
    sweep.add_argument("--seed", type=seed, default=DEFAULTS["seed"], help="random seed")
    sweep.add_argument("--plot", metavar="PNG", help="save the trade-off curve to this file")
    sweep.add_argument("--json", metavar="JSON",
                       help="save lambdas and one accuracy_matrix per λ here ('-': stdout)")
    sweep.add_argument("--threads", type=positive(int), default=1, help="torch CPU threads")
    sweep.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sweep.add_argument("-v", "--verbose", action="count", default=0,
                       help="log to stderr (-v INFO, -vv DEBUG)")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser, cache) -> int:
    """Run ``ewclab sweep``; return the exit status."""
    from tqdm.auto import tqdm

    from ewclab.experiment import plan, sweep
    from ewclab.tradeoff import lam_grid, parse_lams

    check_outputs(args, parser)
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
    histories, code = run_reported(
        "ewclab sweep", bar,
        lambda: sweep(lams, p.tasks, args.model, args.method, epochs=p.epochs, seed=args.seed,
                      cache=cache, callback=lambda point: bar.update(point.step - bar.n)),
    )
    if code:
        return code
    a, b = p.names[0], p.names[-1]
    rows = [f"{'λ':>10}  {a + ' after ' + b:>24}  {b:>14}"]
    rows += [f"{lam:>10g}  {pct(h.accuracy_matrix[-1, 0]):>24}  "
             f"{pct(h.accuracy_matrix[-1, -1]):>14}" for lam, h in zip(lams, histories,
                                                                       strict=True)]
    print("\n".join(rows), file=sys.stderr if args.json == "-" else sys.stdout)
    try:
        _save(lams, histories, args, 1 / p.tasks[0].num_classes)
    except OSError as err:
        print(f"ewclab sweep: could not write the results: {err}", file=sys.stderr)
        return 1
    return 0


def _save(lams: list[float], histories: list, args: argparse.Namespace,
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
            atomic_write(args.json, lambda f: f.write(json.dumps(out, indent=1).encode()))
    if args.plot:
        from ewclab.plots.pareto import plot_pareto
        from ewclab.tradeoff import tradeoff_points

        names = histories[0].tasks
        fig = plot_pareto({args.method: tradeoff_points(lams, histories)},
                          tasks=(names[0], names[-1]), chance=chance)
        suffix = Path(args.plot).suffix.lstrip(".").lower()
        atomic_write(args.plot, lambda f: fig.savefig(f, format=suffix, dpi=120,
                                                 bbox_inches="tight"))
