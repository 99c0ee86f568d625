"""Ready task sequences: ``"mnist->fashion"``, ``"fashion->mnist"``, ``"permuted:5"``, ``"split"``.

>>> [t.name for t in get_scenario("mnist->fashion")]
['mnist', 'fashion-mnist']
"""

from __future__ import annotations

import os

from ewclab.data import Task, load_task, permute_task, split_task

__all__ = ["SCENARIOS", "get_scenario"]

#: The named scenarios (``"permuted:T"`` takes any T >= 1).
SCENARIOS = ("mnist->fashion", "fashion->mnist", "permuted:5", "split")

_ALIASES = {"mnist": "mnist", "fashion": "fashion-mnist", "fashion-mnist": "fashion-mnist"}
_SPLIT_PAIRS = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))


def get_scenario(
    spec: str, source: str = "bundled", root: str | os.PathLike | None = None
) -> list[Task]:
    """The list of tasks a scenario name stands for.

    Parameters
    ----------
    spec : str
        ``"a->b[->c...]"`` with each name ``mnist``, ``fashion`` or ``fashion-mnist``
        (e.g. ``"mnist->fashion"``, the seed's demo); ``"permuted:T"``: ``T`` permuted-MNIST
        tasks (pixel permutations with seeds ``1..T``); ``"split"``: split MNIST, five
        tasks of two digits each ((0, 1), (2, 3), ...), labels remapped to 0/1 (the
        domain-incremental setting, one shared output head).
    source, root
        Passed to :func:`ewclab.data.load_task` (``"bundled"`` data or the ``"full"``
        datasets found under ``root``).

    Returns
    -------
    list of Task
        In training order, with unique names.

    Raises
    ------
    ValueError
        For a spec of none of these forms; errors of ``load_task`` pass through.
    """
    if not isinstance(spec, str):
        raise TypeError(f"scenario must be a string such as 'mnist->fashion', got {spec!r}")
    spec = spec.strip().lower()
    if spec.startswith("permuted:"):
        count = spec.split(":", 1)[1]
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"expected 'permuted:T' with an integer T >= 1, got {spec!r}")
        mnist = load_task("mnist", source=source, root=root)
        return [permute_task(mnist, seed) for seed in range(1, int(count) + 1)]
    if spec == "split":
        mnist = load_task("mnist", source=source, root=root)
        return [split_task(mnist, pair) for pair in _SPLIT_PAIRS]
    names = [part.strip() for part in spec.split("->")]
    unknown = [n for n in names if n not in _ALIASES]
    datasets = [_ALIASES.get(n) for n in names]
    if unknown or len(set(datasets)) != len(datasets):
        raise ValueError(
            f"unknown scenario {spec!r}; expected 'a->b' with distinct names from "
            f"{sorted(_ALIASES)}, 'permuted:T' or 'split' (e.g. one of {list(SCENARIOS)})"
        )
    return [load_task(name, source=source, root=root) for name in datasets]
