"""A small per-task memory of training samples, the input to ``consolidate``.

The seed notes: "the computation of the Fisher needs samples from the dataset, so we will
have to store a few samples from every task during training". `TaskBuffer` keeps at most
``per_task`` samples of each task while the task's batches stream past:

- plain reservoir sampling (Vitter's algorithm R): every sample seen so far is kept with
  the same probability ``per_task / seen``;
- class-balanced reservoir sampling (Chrysakis & Moens, ICML 2020): when the memory is
  full, a sample of an under-represented class evicts a random sample of the largest
  class; a sample of a largest class replaces one of its own class with probability
  ``kept / seen`` of that class.
"""

from __future__ import annotations

import bisect
import math

import numpy as np
import torch

from ewclab.validation import check_bool, check_int, check_seed


class _Reservoir:
    """The samples kept for one task."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor, seen: int, class_seen: dict[int, int]):
        self.X, self.y, self.seen, self.class_seen = X, y, seen, class_seen

    def __len__(self) -> int:
        return len(self.y)


class TaskBuffer:
    """Reservoir of at most ``per_task`` samples for every task.

    Parameters
    ----------
    per_task : int, default 200
        Most samples kept for one task.
    balanced : bool, default True
        Class-balanced reservoir sampling instead of plain reservoir sampling.
    seed : int, default 0
        Seeds the buffer's own random generator (the global RNG is not touched).
    num_classes : int, optional
        When given, labels must lie in ``[0, num_classes)`` (a learner passes its own);
        otherwise any label ``>= 0`` is kept.

    Examples
    --------
    >>> buf = TaskBuffer(per_task=50)
    >>> buf.add("mnist", x_batch, y_batch)          # doctest: +SKIP
    >>> model.consolidate(*buf.get("mnist"))       # doctest: +SKIP
    """

    def __init__(
        self,
        per_task: int = 200,
        balanced: bool = True,
        seed: int = 0,
        num_classes: int | None = None,
    ):
        self.per_task = check_int(per_task, "per_task", low=1)
        self.balanced = check_bool(balanced, "balanced")
        self.seed = check_seed(seed, none_ok=False)
        self.num_classes = None if num_classes is None else check_int(
            num_classes, "num_classes", low=1
        )
        self._rng = torch.Generator().manual_seed(seed)
        self._tasks: dict[str, _Reservoir] = {}

    @property
    def tasks(self) -> list[str]:
        """Names of the tasks with stored samples, in the order they were first added."""
        return list(self._tasks)

    def __len__(self) -> int:
        return sum(len(r) for r in self._tasks.values())

    def get(self, task_name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Return copies ``(X, y)`` of the samples kept for ``task_name``.

        Raises
        ------
        KeyError
            No samples were added under that name.
        """
        if task_name not in self._tasks:
            raise KeyError(f"no samples stored for task {task_name!r}; stored tasks: {self.tasks}")
        r = self._tasks[task_name]
        return r.X.clone(), r.y.clone()

    def add(self, task_name: str, X: object, y: object) -> None:
        """Offer a batch of samples of ``task_name`` to the reservoir.

        ``X`` (N, ...) and ``y`` (N,) integer labels, numpy or torch; kept on the CPU in
        their own dtype. Everything is checked before anything is stored: a ``TypeError``
        or ``ValueError`` (non-integer or out-of-range labels, non-finite pixels, a shape
        or dtype unlike the task's earlier samples) leaves the buffer unchanged.
        """
        X, y = self._check(task_name, X, y)
        r = self._tasks.get(task_name)
        if r is None:
            empty_X = torch.empty((0, *X.shape[1:]), dtype=X.dtype)
            r = _Reservoir(empty_X, torch.empty(0, dtype=torch.int64), 0, {})
        keep_y = r.y.tolist()
        slots_of: dict[int, list[int]] = {}  # class -> its slots, ascending
        for i, c in enumerate(keep_y):
            slots_of.setdefault(c, []).append(i)
        written: dict[int, int] = {}  # slot -> the batch sample that ends up there
        u = torch.rand(len(y), 2, generator=self._rng).tolist()
        for n, (c, (u1, u2)) in enumerate(zip(y.tolist(), u, strict=True)):
            r.seen += 1
            r.class_seen[c] = r.class_seen.get(c, 0) + 1
            slot = self._slot(keep_y, slots_of, r, c, u1, u2)
            if slot < 0:
                continue
            if slot == len(keep_y):
                keep_y.append(c)
            else:
                slots_of[keep_y[slot]].remove(slot)
                keep_y[slot] = c
            bisect.insort(slots_of.setdefault(c, []), slot)
            written[slot] = n
        if written:
            grown = len(keep_y) - len(r.y)
            X_kept = torch.cat([r.X, X.new_empty((grown, *X.shape[1:]))]) if grown else r.X.clone()
            X_kept[list(written)] = X[list(written.values())]  # one write per kept sample
            r.X = X_kept
        r.y = torch.tensor(keep_y, dtype=torch.int64)
        self._tasks[task_name] = r

    def _slot(
        self, keep_y: list[int], slots_of: dict[int, list[int]], r: _Reservoir, c: int,
        u1: float, u2: float,
    ) -> int:
        """Where the new sample of class ``c`` goes: ``len(keep_y)`` appends, -1 drops it."""
        if len(keep_y) < self.per_task:
            return len(keep_y)
        if not self.balanced:
            j = int(u1 * r.seen)
            return j if j < self.per_task else -1
        counts = {k: len(s) for k, s in slots_of.items() if s}
        largest = max(counts.values())
        if counts.get(c, 0) < largest:
            victims = [k for k, n in counts.items() if n == largest]
            slots = slots_of[victims[int(u2 * len(victims))]]
            return slots[int(u1 * len(slots))]
        if u1 * r.class_seen[c] < counts[c]:
            slots = slots_of[c]
            return slots[int(u2 * len(slots))]
        return -1

    def _check(self, task_name: str, X: object, y: object) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(task_name, str):
            raise TypeError(f"task_name must be a str, got {type(task_name).__name__}")
        X = torch.from_numpy(np.ascontiguousarray(X)) if isinstance(X, np.ndarray) else X
        y = torch.as_tensor(np.asarray(y)) if isinstance(y, (np.ndarray, list, tuple)) else y
        if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise TypeError(
                f"X and y must be numpy arrays or torch tensors, got {type(X).__name__} "
                f"and {type(y).__name__}"
            )
        if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
            raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
        if X.ndim < 1 or y.ndim != 1 or len(X) != len(y):
            raise ValueError(
                f"expected X of shape (N, ...) and y of shape (N,), got {tuple(X.shape)} and "
                f"{tuple(y.shape)}"
            )
        if X.dtype.is_floating_point and not bool(torch.isfinite(X).all()):
            raise ValueError("X contains NaN or inf values; expected finite numbers")
        y = y.detach().cpu().long()
        high = math.inf if self.num_classes is None else self.num_classes
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= high):
            expected = ">= 0" if high == math.inf else f"in [0, {high})"
            raise ValueError(
                f"labels must be {expected}, got values from {int(y.min())} to {int(y.max())}"
            )
        r = self._tasks.get(task_name)
        if r is not None and (r.X.shape[1:] != X.shape[1:] or r.X.dtype != X.dtype):
            raise ValueError(
                f"task {task_name!r} stores samples of shape {tuple(r.X.shape[1:])} and dtype "
                f"{r.X.dtype}, got {tuple(X.shape[1:])} and {X.dtype}"
            )
        return X.detach().cpu(), y

    def state_dict(self) -> dict:
        """Everything needed to restore the buffer; only tensors, ints, bools, strs, dicts."""
        return {
            "per_task": self.per_task,
            "balanced": self.balanced,
            "seed": self.seed,
            "num_classes": self.num_classes,
            "rng": self._rng.get_state(),
            "tasks": {
                name: {
                    "X": r.X.clone(),
                    "y": r.y.clone(),
                    "seen": r.seen,
                    "class_seen": dict(r.class_seen),
                }
                for name, r in self._tasks.items()
            },
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore from :meth:`state_dict`; checks everything before changing anything."""
        try:
            fresh = TaskBuffer(
                state["per_task"], state["balanced"], state["seed"],
                num_classes=state.get("num_classes", self.num_classes),
            )
            fresh._rng.set_state(state["rng"])
            for name, t in state["tasks"].items():
                X, y = fresh._check(name, t["X"], t["y"])
                if len(y) > fresh.per_task or int(t["seen"]) < len(y):
                    raise ValueError(f"task {name!r} holds {len(y)} samples, seen {t['seen']}")
                class_seen = {int(k): int(v) for k, v in t["class_seen"].items()}
                fresh._tasks[name] = _Reservoir(X.clone(), y.clone(), int(t["seen"]), class_seen)
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
            raise ValueError(f"not a valid TaskBuffer state: {exc!r}") from exc
        self.__dict__.update(fresh.__dict__)
