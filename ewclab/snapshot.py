"""Copies of a learner's training state, to undo a refused step or a failed ``fit``.

A :class:`Snapshot` holds the parameters and the optimiser's state tensors (momentum,
Adam's moments and step counts), a copy of each, the optimiser's per-parameter state
dicts, a random generator's state and whatever else the caller needs back (``extra``).
:func:`restore` copies every tensor back in place, so references to the parameters (the
optimiser's, the caller's) stay valid. Only plain tensor copies are used: no private
PyTorch API.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass
class Snapshot:
    """The tensors to put back, their copies, the optimiser's state dicts, the generator's
    state and the caller's ``extra`` values."""

    tensors: list[Tensor]
    copies: list[Tensor]
    state: dict
    rng: Tensor
    extra: Any = None


def take(
    params: list[Tensor],
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    extra: Any = None,
    reuse: list[Tensor] | None = None,
) -> Snapshot:
    """Copy ``params``, ``optimizer``'s state and ``generator``'s state.

    ``reuse``: tensors from an earlier snapshot (``snap.copies``) to copy into when their
    shapes still match, so that a learner's per-step undo allocates nothing.
    """
    state = {p: optimizer.state[p] for p in params if p in optimizer.state}
    tensors = params + [v for s in state.values() for v in s.values() if torch.is_tensor(v)]
    if reuse is None or [c.shape for c in reuse] != [t.shape for t in tensors]:
        reuse = [torch.empty_like(t) for t in tensors]
    with torch.no_grad():
        for copy, t in zip(reuse, tensors, strict=True):
            copy.copy_(t)
    state = {p: dict(s) for p, s in state.items()}
    return Snapshot(tensors, reuse, state, generator.get_state(), extra)


def restore(snap: Snapshot, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> Any:
    """Put every tensor, the optimiser's state dicts and the generator back; return
    ``snap.extra``."""
    with torch.no_grad():
        for t, copy in zip(snap.tensors, snap.copies, strict=True):
            t.copy_(copy)
    optimizer.state.clear()
    optimizer.state.update(snap.state)
    generator.set_state(snap.rng)
    return snap.extra


@contextmanager
def global_rng_kept_on_error(device: torch.device) -> Iterator[None]:
    """Put torch's global generator (and ``device``'s, for CUDA) back if the block raises.

    A training step draws its dropout masks from the global generator before it can know
    whether the step will be refused; this makes a refused step leave that generator as
    it found it. Costs one copy of the generator's state (a few kB) per block.
    """
    cpu = torch.random.get_rng_state()
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    try:
        yield
    except BaseException:
        torch.random.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, device)
        raise
