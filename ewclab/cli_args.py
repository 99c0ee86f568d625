"""What the ``ewclab`` commands share: argument types, the help layout, output checks and
writes that never leave a half-written file."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tqdm.auto import tqdm

from ewclab.validation import check_seed

T = TypeVar("T")


def run_reported(
    prog: str, bar: tqdm, work: Callable[[], T], hint: Callable[[str], str] = lambda _: ""
) -> tuple[T | None, int]:
    """Run ``work()`` and close its progress bar; return (its result, exit code 0).

    On Ctrl-C, or when the run is refused or diverges (``FloatingPointError`` /
    ``ValueError``: a λ or lr past the stability bound, a step that diverged anyway), print
    one line instead of a traceback and return (None, 130) or (None, 1). ``hint(message)``
    is appended to the error's line.
    """
    try:
        result = work()
    except KeyboardInterrupt:
        bar.close()
        print("interrupted", file=sys.stderr)
        return None, 130
    except (FloatingPointError, ValueError) as err:
        bar.close()
        print(f"{prog}: {err}{hint(str(err))}", file=sys.stderr)
        return None, 1
    bar.close()
    return result, 0


def positive(kind: type) -> callable:
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


def seed(text: str) -> int:
    try:
        return check_seed(int(text), none_ok=False)
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 0 to 2**64 - 1, got {text!r}"
        ) from None


def non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


class Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show "(default: X)" only for options whose default is a value, not None or False."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def check_outputs(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
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


def pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{100 * x:.1f}%"


def atomic_write(path: str, write) -> None:
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
