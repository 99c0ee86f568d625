"""What a method and a scenario add to the training of one task: the run path's hooks.

:func:`ewclab.experiment.run_sequence` trains every method with the same loop
(:func:`ewclab.training.train_on_task`: one ``partial_fit`` per batch, the batch offered
to ``learner.buffer``). A :class:`TaskRun` holds what differs, for task ``i`` of a plan:

- **replay** (Robins 1995; :mod:`ewclab.replay`): each step trains on the task's batch
  followed by as many samples drawn from the buffer's earlier tasks; the buffer is still
  offered only the task's own batch;
- **task-incremental** scenarios (a :class:`~ewclab.heads.MultiHead` learner): the task's
  own head trains, and replayed samples are routed to the heads of the tasks they came
  from (``use_heads``);
- **SI** (Zenke et al. 2017): a :class:`~ewclab.importance.PathIntegral` updated after
  every step; its Ω is the importance anchored when the task ends;
- **MAS** (Aljundi et al. 2018): Ω from :func:`~ewclab.importance.mas_importance` on the
  samples the buffer kept of the task, when it ends.

EWC, online EWC and L2 anchor the Fisher (``learner.consolidate``), as before.

>>> run = TaskRun(p, i, learner)                                     # doctest: +SKIP
>>> with run.routed():                                              # doctest: +SKIP
...     train_on_task(learner, task.name, task, fit_step=run.step, buffer=learner.buffer)
>>> learner.ewc.add_task(run.importance(X_kept))                    # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from ewclab.heads import MultiHead, task_head
from ewclab.importance import PathIntegral, mas_importance
from ewclab.learner import Learner
from ewclab.plan import Plan
from ewclab.replay import earlier_tasks, replay_batch, with_replay

__all__ = ["TaskRun"]


class TaskRun:
    """The method's and the scenario's part of training task ``i`` of plan ``p``.

    Create it when the task starts (SI's tracker copies the weights then), train with
    :meth:`step` inside :meth:`routed`, and take :meth:`importance` when the task ends.

    Parameters
    ----------
    p : Plan
        The run's settings (:func:`ewclab.plan.plan`).
    i : int
        The task's position in ``p.tasks``.
    learner : Learner
        The learner the plan built (a :class:`~ewclab.heads.MultiHead` for task-IL).

    Attributes
    ----------
    tracker : PathIntegral or None
        SI's path integral over this task (``method="si"`` only).
    replayed : dict of str to int
        Replayed samples per earlier task so far (``method="replay"`` only).
    """

    def __init__(self, p: Plan, i: int, learner: Learner):
        self.plan, self.task, self.learner = p, p.tasks[i], learner
        self.tracker = PathIntegral(learner, ewc=learner.ewc) if p.importance == "si" else None
        self.replayed: dict[str, int] = {}
        self._generator = None
        if p.method == "replay":  # its own stream: the batch order's is left as it was
            self._generator = torch.Generator().manual_seed((p.task_seed(i) + 2**32) % 2**64)
        self._heads = ({t.name: getattr(t, "task_id", 0) for t in p.tasks}
                       if isinstance(learner, MultiHead) else None)

    @contextmanager
    def routed(self) -> Iterator[Learner]:
        """The learner answering with this task's head (task-IL), for training and the
        importance; evaluation picks each task's head itself."""
        with task_head(self.learner, self.task) as learner:
            yield learner

    def step(self, X: Any, y: Any) -> float:
        """One training step on the task's batch ``(X, y)``, with what the method adds;
        returns the loss (of the mixed batch, for replay)."""
        name, buffer = self.task.name, self.learner.buffer
        if self._generator is not None and earlier_tasks(buffer, name):
            replay = replay_batch(buffer, name, len(y), self._generator)
            X_all, y_all = with_replay(X, y, replay)
            if self._heads is None:
                loss = self.learner.partial_fit(X_all, y_all)
            else:
                heads = [self._heads[name]] * len(y) + [self._heads[t] for t in replay.tasks]
                with self.learner.use_heads(heads):
                    loss = self.learner.partial_fit(X_all, y_all)
            for t in replay.tasks:
                self.replayed[t] = self.replayed.get(t, 0) + 1
        else:
            loss = self.learner.partial_fit(X, y)
        if self.tracker is not None:
            self.tracker.update()
        return loss

    def importance(self, X: Any) -> dict[str, Tensor] | None:
        """The importance SI or MAS anchors at the end of the task (None for the other
        methods: EWC's is the Fisher of ``learner.consolidate``).

        Parameters
        ----------
        X : array-like
            The samples the buffer kept of the task (MAS's unlabelled samples).
        """
        if self.tracker is not None:
            if not self.tracker.steps:  # Ω would be 0: a penalty silently without effect
                raise ValueError(f"SI tracked no training step of task {self.task.name!r}: "
                                 "train with TaskRun.step before taking its importance")
            return self.tracker.importance()
        if self.plan.importance == "mas":
            with self.routed():
                return mas_importance(self.learner, X)
        return None
