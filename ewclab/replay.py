"""Experience replay (rehearsal, Robins 1995) from the task buffer: while task t is
trained, each step mixes in a batch of stored samples of the tasks before t. The buffer
is a :class:`~ewclab.buffer.TaskBuffer`, the per-task sample store that also feeds the
Fisher.

A training loop needs two lines per step::

    gen = torch.Generator().manual_seed(seed)                 # once per run
    ...
    if earlier_tasks(buffer, name):
        X, y = with_replay(X, y, replay_batch(buffer, name, len(y), gen))
    learner.partial_fit(X, y)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from ewclab.buffer import TaskBuffer
from ewclab.validation import check_int

__all__ = ["Replay", "earlier_tasks", "replay_batch", "with_replay"]


class Replay(NamedTuple):
    """A replayed batch: samples ``X`` (N, ...), labels ``y`` (N,) and the task each
    sample was stored under (``tasks[n]``), so a multi-head model can route it."""

    X: Tensor
    y: Tensor
    tasks: list[str]


def earlier_tasks(buffer: TaskBuffer, current: str) -> list[str]:
    """The tasks stored in ``buffer`` before ``current``, in the order they were stored.

    When ``current`` has no samples stored yet (the usual case while it is trained:
    a loop stores a task's samples as it ends), every stored task is earlier.
    """
    _check(buffer, current)
    names = buffer.tasks
    return names[: names.index(current)] if current in names else names


def replay_batch(
    buffer: TaskBuffer, current: str, batch_size: int, generator: torch.Generator
) -> Replay:
    """Draw ``batch_size`` stored samples of the tasks before ``current``.

    The samples of every earlier task (see :func:`earlier_tasks`) are pooled and
    ``min(batch_size, pool size)`` of them drawn uniformly without replacement, so
    each task appears in proportion to the samples it holds. Only ``generator`` is
    used: the same generator state gives the same batch, and neither the buffer nor
    torch's global random state changes.

    Parameters
    ----------
    buffer : TaskBuffer
    current : str
        The task being trained; its samples are never drawn.
    batch_size : int
        Samples wanted (fewer when the earlier tasks hold fewer).
    generator : torch.Generator
        A CPU generator, seeded by the caller.

    Returns
    -------
    Replay
        ``(X, y, tasks)``: copies on the CPU, in the buffer's dtypes.

    Raises
    ------
    TypeError
        A buffer that is not a TaskBuffer, a non-str ``current``, a non-int
        ``batch_size``, or a generator that is not a CPU ``torch.Generator``.
    ValueError
        ``batch_size < 1``, or no task was stored before ``current``.
    """
    _check(buffer, current)
    batch_size = check_int(batch_size, "batch_size", low=1)
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise TypeError(f"generator must be a CPU torch.Generator, got {generator!r}")
    names = earlier_tasks(buffer, current)
    if not names:
        raise ValueError(
            f"no task was stored before {current!r} (stored: {buffer.tasks}); replay starts "
            "with the second task: check earlier_tasks(buffer, current) first"
        )
    parts = [buffer.get(name) for name in names]
    X = torch.cat([x for x, _ in parts])  # (pool, ...)
    y = torch.cat([t for _, t in parts])  # (pool,)
    owner = np.repeat(np.arange(len(names)), [len(t) for _, t in parts])  # (pool,)
    take = torch.randperm(len(y), generator=generator)[:batch_size]  # (k,)
    return Replay(X[take], y[take], [names[i] for i in owner[take.numpy()]])


def with_replay(X: Any, y: Any, replay: Replay) -> tuple[Tensor, Tensor]:
    """The current batch followed by the replayed one, as tensors ``(X, y)``.

    ``X`` and ``y`` may be numpy arrays or tensors; the replayed samples are moved to
    ``X``'s device. Raises ``ValueError`` when the samples' shapes or dtypes differ.
    """
    if not isinstance(replay, Replay):
        raise TypeError(f"replay must be what replay_batch returns, got {type(replay).__name__}")
    X = torch.as_tensor(X)
    y = torch.as_tensor(y)
    if X.shape[1:] != replay.X.shape[1:] or X.dtype != replay.X.dtype:
        raise ValueError(
            f"replayed samples are {replay.X.dtype} {tuple(replay.X.shape[1:])}, the batch is "
            f"{X.dtype} {tuple(X.shape[1:])}; store samples in the form the batches have"
        )
    X_all = torch.cat([X, replay.X.to(X.device)])  # (N + k, ...)
    y_all = torch.cat([y.to(torch.int64), replay.y.to(y.device)])  # (N + k,)
    return X_all, y_all


def _check(buffer: Any, current: Any) -> None:
    if not isinstance(buffer, TaskBuffer):
        raise TypeError(f"buffer must be an ewclab TaskBuffer, got {type(buffer).__name__}")
    if not isinstance(current, str):
        raise TypeError(f"current must be a task name (str), got {current!r}")
