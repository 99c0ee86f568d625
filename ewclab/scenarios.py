"""Ready task sequences: ``"mnist->fashion"``, ``"fashion->mnist"``, ``"permuted:5"``, ``"split"``
(and ``"split:<scenario>"``, ``"split-fashion[:<scenario>]"``, see :mod:`ewclab.split`).

>>> [t.name for t in get_scenario("mnist->fashion")]
['mnist', 'fashion-mnist']
"""

from __future__ import annotations

import os

from ewclab.data import Task, load_task, permute_task
from ewclab.split import SPLIT_SCENARIOS, split_tasks

__all__ = ["SCENARIOS", "get_scenario"]

#: The named scenarios (``"permuted:T"`` takes any T >= 1).
SCENARIOS = (
    "mnist->fashion", "fashion->mnist", "permuted:5", "split",
    *(f"{name}:{kind}" for name in ("split", "split-fashion") for kind in SPLIT_SCENARIOS),
)

_ALIASES = {"mnist": "mnist", "fashion": "fashion-mnist", "fashion-mnist": "fashion-mnist"}
_SPLIT_DATA = {"split": "mnist", "split-fashion": "fashion-mnist"}


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
        domain-incremental setting, one shared output head); ``"split:S"`` with ``S``
        one of ``"task"``, ``"domain"``, ``"class"``: the same tasks in scenario ``S``
        (:func:`ewclab.split.split_tasks`); ``"split-fashion[:S]"``: split Fashion-MNIST.
    source, root
        Passed to :func:`ewclab.data.load_task` (``"bundled"`` data or the ``"full"``
        datasets found under ``root``).

    Returns
    -------
    list of Task
        In training order, with unique names (the split ones are
        :class:`~ewclab.split.SplitTask`).

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
    name, _, kind = spec.partition(":")
    if name in _SPLIT_DATA and (kind in SPLIT_SCENARIOS or spec == name):
        data = load_task(_SPLIT_DATA[name], source=source, root=root)
        return list(split_tasks(data, kind or "domain"))
    names = [part.strip() for part in spec.split("->")]
    unknown = [n for n in names if n not in _ALIASES]
    datasets = [_ALIASES.get(n) for n in names]
    if unknown or len(set(datasets)) != len(datasets):
        raise ValueError(
            f"unknown scenario {spec!r}; expected 'a->b' with distinct names from "
            f"{sorted(_ALIASES)}, 'permuted:T', 'split' or 'split[-fashion]:S' with S in "
            f"{SPLIT_SCENARIOS} (e.g. one of {list(SCENARIOS)})"
        )
    return [load_task(name, source=source, root=root) for name in datasets]
