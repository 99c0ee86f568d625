"""The task-A cache: reuse the model trained on the first task when only λ or later tasks change.

Training the first task of a sequence does not depend on the method, λ, γ or the later
tasks' epochs, so :func:`ewclab.experiment.run_sequence` can store the model right after
task A and restore a copy of it: moving the playground's λ slider retrains task B only.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ewclab.data import Task
from ewclab.learner import Learner
from ewclab.settings import IMPORTANCES
from ewclab.validation import check_int

__all__ = ["TaskACache", "fingerprint", "key"]


@dataclass(frozen=True)
class Entry:
    """What the cache keeps of a run after its first task."""

    model: Learner
    fisher: dict[str, torch.Tensor]
    history: dict
    step: int
    loss: float
    importance: dict[str, torch.Tensor] | None = None  # the penalty's, when not the Fisher


class TaskACache:
    """Trained task-A models and their Fisher, reused when only λ or later tasks change.

    Training the first task does not depend on the method, λ, γ or the later tasks'
    epochs, so :func:`~ewclab.experiment.run_sequence` stores the model right after
    task A (its Fisher, and the history up to then) under a key of everything that does
    affect it: model, width, lr, optimiser, batch size, epochs of task A, seed, Fisher kind
    and samples, evaluation settings, the scenario (its heads), the replay buffer's size,
    the importance the method anchors (Fisher, SI or MAS) and the tasks' data. A hit
    restores a deep copy, so cached entries never change.

    Parameters
    ----------
    maxsize : int
        Entries kept (least recently used dropped first).
    """

    def __init__(self, maxsize: int = 4) -> None:
        self.maxsize = check_int(maxsize, "maxsize", low=1)
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple, Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return (
            f"TaskACache({len(self)}/{self.maxsize} entries, "
            f"{self.hits} hits, {self.misses} misses)"
        )

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()

    def get(self, key: tuple) -> Entry | None:
        """The entry stored under ``key`` (counted as a hit), or None (a miss)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self.hits += 1
            self._entries.move_to_end(key)
            return entry

    def peek(self, key: tuple) -> Entry | None:
        """The entry stored under ``key``, or None, without counting a hit or a miss.

        For a front end that wants to know what a run would reuse (e.g. task A's Fisher,
        to tell a student the largest stable λ) before starting it.
        """
        with self._lock:
            return self._entries.get(key)

    def put(self, key: tuple, entry: Entry) -> None:
        """Store ``entry`` under ``key``, dropping the least recently used beyond maxsize."""
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)


def fingerprint(tasks: Sequence[Task]) -> str:
    """A digest of the tasks' names and data (so a cache never mixes datasets)."""
    h = hashlib.blake2b(digest_size=16)
    for t in tasks:
        h.update(t.name.encode())
        for a in (t.x_train, t.y_train, t.x_test, t.y_test):
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def key(
    model: Any, data: str, settings: Mapping[str, Any], eval_every: int | None = None,
    eval_samples: int | None = None,
) -> tuple:
    """The key a run's task-A entry is stored under: everything training task A depends on.

    Parameters
    ----------
    model : str or callable
        The ``model`` argument of :func:`~ewclab.experiment.run_sequence`.
    data : str
        :func:`fingerprint` of the run's tasks.
    settings : mapping
        The run's resolved settings, as in ``history.settings``: ``width``, ``lr``,
        ``optimizer``, ``batch_size``, ``epochs`` (task A's first), ``seed``, ``fisher``,
        ``fisher_samples``; and ``scenario`` (split MNIST's task-, domain- and
        class-incremental tasks have the same names and data, but not the same heads),
        ``replay_samples`` (the replay buffer's size) and the importance the method
        anchors (SI's path integral is tracked while task A trains), where given.
    eval_every, eval_samples
        The run's evaluation settings.
    """
    s = settings
    return (
        model, s["width"], s["lr"], s["optimizer"], s["batch_size"], s["epochs"][0],
        int(s["seed"]), s["fisher"], s["fisher_samples"], eval_every, eval_samples, data,
        s.get("scenario"), s.get("replay_samples"), IMPORTANCES.get(s.get("method")) or "fisher",
    )
