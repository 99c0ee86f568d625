"""Multi-head networks for task-incremental learning: one output head per task, chosen
by the task label. In the task-incremental scenario of van de Ven & Tolias 2019 ("Three
scenarios for continual learning") the task identity is given at test time, so each task
can have its own output layer (a "multi-headed" network).

:class:`MultiHead` takes any registered learner class as its body ("MLP", "TestNet",
"AlexNet", or a user's own) built with ``heads × classes_per_head`` outputs, and its
forward returns only the ``classes_per_head`` logits of the current head,
``logits[:, k·c:(k+1)·c]`` for ``task = k``. Head k's output weights are rows
k·c … (k+1)·c − 1 of the body's last layer: only the current head's rows (and the shared
layers below) receive gradients, the other heads' Fisher is zero, and everything the
learner does (``partial_fit``, ``predict``, ``score``, ``consolidate``, ``save``/``load``)
works unchanged for the current head. Set the head with ``model.task = k`` (it stays) or
``with model.use_head(k): ...`` (put back afterwards). A batch that mixes tasks (the
current task's samples and replayed ones) routes sample n to head ``heads[n]`` inside
``with model.use_heads(heads): model.partial_fit(X, y)``.

>>> model = MultiHead("MLP", heads=5, classes_per_head=2, seed=0)    # doctest: +SKIP
>>> model.task = 1; model.partial_fit(X_23, y_01)                     # doctest: +SKIP
>>> with model.use_head(0): model.score(X_01_test, y_01_test)         # doctest: +SKIP
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

import ewclab.models  # noqa: F401  (registers MLP, TestNet and AlexNet with persist)
from ewclab import persist
from ewclab.learner import Learner
from ewclab.split import SplitTask
from ewclab.validation import InputSpec, check_int

__all__ = ["MultiHead", "task_head"]

#: The learner options (everything a Learner's constructor takes besides ``arch``).
_OPTIONS = frozenset(inspect.signature(Learner.__init__).parameters) - {"self", "arch"}


class MultiHead(Learner):
    """A learner whose body is another learner's network, with one output head per task.

    Parameters
    ----------
    base : str, default "MLP"
        Name of a registered :class:`~ewclab.learner.Learner` subclass whose ``build``
        takes ``num_classes`` and whose forward returns logits (N, num_classes):
        ``"MLP"``, ``"TestNet"``, ``"AlexNet"`` or a user's own.
    heads : int, default 5
        Number of heads (tasks).
    classes_per_head : int, default 2
        Outputs of each head; labels lie in ``[0, classes_per_head)``.
    base_arch : dict, optional
        The base's architecture keywords except ``num_classes`` (e.g. ``{"hidden":
        (400, 400)}``); missing ones take the base's defaults.
    **options
        Learner options (``ewc_lambda``, ``optimizer``, ``lr``, ``seed``, ``device``, ...).

    Attributes
    ----------
    task : int
        The head the forward pass uses, in ``[0, heads)``; 0 at first.

    Raises
    ------
    TypeError, ValueError
        An unknown base, bad ``heads``/``classes_per_head``, or ``base_arch`` that the
        base refuses (checked on a shape-only copy before anything is built).

    Notes
    -----
    With ``seed`` given, the weights equal those of ``base(num_classes=heads *
    classes_per_head, **base_arch, seed=seed)``: the body is built by the base's own
    ``build`` on this module and runs through the base's own ``forward``.
    """

    def __init__(
        self,
        base: str = "MLP",
        heads: int = 5,
        classes_per_head: int = 2,
        base_arch: Mapping[str, Any] | None = None,
        **options: Any,
    ):
        cls = _base_class(base)
        heads = check_int(heads, "heads", low=1)
        classes_per_head = check_int(classes_per_head, "classes_per_head", low=1)
        if base_arch is None:
            base_arch = {}
        if not isinstance(base_arch, Mapping) or not all(isinstance(k, str) for k in base_arch):
            raise TypeError(f"base_arch must be a dict of architecture keywords, got {base_arch!r}")
        clash = sorted(set(base_arch) & (_OPTIONS | {"num_classes"}))
        if clash:
            raise ValueError(
                f"base_arch must hold only the base's architecture keywords, not {clash}; "
                "num_classes is heads * classes_per_head and learner options go to MultiHead"
            )
        # a shape-only copy checks the base's keywords and fills in its defaults, allocating
        # nothing and drawing no random number (seed=0)
        probe = cls(num_classes=heads * classes_per_head, **base_arch, device="meta", seed=0)
        full_arch = {k: v for k, v in probe.config.items()
                     if k not in _OPTIONS and k != "num_classes"}
        arch = dict(base=cls.__name__, heads=heads, classes_per_head=classes_per_head,
                    base_arch=full_arch)
        super().__init__(arch, **options)

    def build(
        self, base: str, heads: int, classes_per_head: int, base_arch: dict[str, Any]
    ) -> InputSpec:
        self._base = _base_class(base)
        self.heads, self.classes_per_head, self._task = heads, classes_per_head, 0
        self._sample_heads: Tensor | None = None  # per-sample heads inside use_heads
        spec = self._base.build(self, num_classes=heads * classes_per_head, **base_arch)
        return replace(spec, num_classes=classes_per_head)

    def forward(self, x: Tensor) -> Tensor:
        logits = self._base.forward(self, x)  # (N, heads * classes_per_head)
        if self._sample_heads is None:
            first = self._task * self.classes_per_head
            return logits[:, first : first + self.classes_per_head]  # (N, classes_per_head)
        heads = self._sample_heads
        if len(heads) != len(logits):
            raise ValueError(
                f"use_heads was given {len(heads)} heads, the batch has {len(logits)} samples; "
                "give one head per sample of the batch passed to partial_fit"
            )
        per_head = logits.view(len(logits), self.heads, self.classes_per_head)  # (N, heads, c)
        rows = torch.arange(len(logits), device=logits.device)  # (N,)
        return per_head[rows, heads.to(logits.device)]  # (N, classes_per_head)

    @property
    def task(self) -> int:
        """The head in use, an int in ``[0, heads)``."""
        return self._task

    @task.setter
    def task(self, value: int) -> None:
        self._task = check_int(value, "task", low=0, high=self.heads - 1)

    @contextmanager
    def use_head(self, task: int) -> Iterator[MultiHead]:
        """Use head ``task`` inside the block, then put the previous head back."""
        before = self._task
        self.task = task
        try:
            yield self
        finally:
            self._task = before

    @contextmanager
    def use_heads(self, heads: Sequence[int] | Tensor) -> Iterator[MultiHead]:
        """Route sample n to head ``heads[n]`` in the forward passes inside the block.

        For one training step on a batch that mixes tasks, e.g. replayed samples of
        earlier tasks (see :mod:`ewclab.replay`) behind the current task's::

            with model.use_heads([k] * len(y) + [task_id[name] for name in replay.tasks]):
                model.partial_fit(*with_replay(X, y, replay))

        Every forward pass inside must see exactly ``len(heads)`` samples in that order
        (``partial_fit`` does; ``fit`` and ``predict`` batch and shuffle, so use
        :meth:`use_head` for them). Raises ``TypeError`` / ``ValueError`` for heads that
        are not ints in ``[0, heads)``; the model is unchanged.
        """
        if isinstance(heads, (str, bytes)) or not isinstance(heads, (Sequence, Tensor)):
            raise TypeError(f"heads must be a sequence of head indices, got {heads!r:.80}")
        index = [check_int(h.item() if isinstance(h, Tensor) else h, f"heads[{n}]",
                           low=0, high=self.heads - 1) for n, h in enumerate(heads)]
        if not index:
            raise ValueError("heads must name the head of at least one sample, got []")
        before = self._sample_heads
        self._sample_heads = torch.tensor(index, dtype=torch.int64)
        try:
            yield self
        finally:
            self._sample_heads = before


@contextmanager
def task_head(model: Learner, task: Any) -> Iterator[Learner]:
    """Inside the block, ``model`` answers with ``task``'s head when it is a
    :class:`MultiHead` and ``task`` a :class:`~ewclab.split.SplitTask` (head
    ``task.task_id``: the task label given in task-incremental learning); otherwise the
    block runs unchanged. The previous head is put back afterwards.

    The run path (:func:`ewclab.experiment.run_sequence`, lesson 07) trains, measures the
    importance and evaluates every task inside ``task_head(learner, task)``.
    """
    if isinstance(model, MultiHead) and isinstance(task, SplitTask):
        with model.use_head(task.task_id):
            yield model
    else:
        yield model


def _base_class(base: Any) -> type[Learner]:
    """The registered learner class named ``base`` (not MultiHead itself)."""
    if not isinstance(base, str):
        raise TypeError(f"base must be the name of a learner class such as 'MLP', got {base!r}")
    cls = persist.CLASSES.get(base)
    if cls is None or not issubclass(cls, Learner) or issubclass(cls, MultiHead):
        known = sorted(n for n, c in persist.CLASSES.items()
                       if issubclass(c, Learner) and not issubclass(c, MultiHead))
        raise ValueError(f"base must be one of {known}, got {base!r}")
    return cls
