"""Save and load learners: weights, optimiser, EWC state (every task's F and θ*, λ, mode,
γ), task buffer and shuffling generator, with the class name and constructor keywords
so that loading rebuilds the same architecture.

The file is a ``torch.save`` of plain data (tensors, numbers, strings, lists, dicts) and
is read with ``torch.load(weights_only=True)``, which never unpickles arbitrary objects.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from ewclab.learner import Learner
from ewclab.models import MLP, AlexNet, TestNet

FORMAT = "ewclab.learner"
VERSION = 1

#: The classes ``load`` can rebuild, by name.
CLASSES: dict[str, type[Learner]] = {c.__name__: c for c in (AlexNet, TestNet, MLP)}


def save(model: Learner, path: str | os.PathLike) -> None:
    """Write ``model`` to ``path``."""
    if type(model).__name__ not in CLASSES:
        raise TypeError(f"can save {sorted(CLASSES)}, got {type(model).__name__}")
    torch.save(
        {
            "format": FORMAT,
            "version": VERSION,
            "class": type(model).__name__,
            "config": dict(model.config),
            "model": model.state_dict(),
            "optimizer": model.optimizer.state_dict(),
            "ewc": model.ewc.state_dict(),
            "buffer": model.buffer.state_dict(),
            "shuffle_rng": model.shuffle_rng.get_state(),
        },
        path,
    )


def load(path: str | os.PathLike, device: str | torch.device | None = None) -> Learner:
    """Rebuild the learner saved at ``path`` (of the class it was saved as).

    Parameters
    ----------
    path : str or os.PathLike
    device : str or torch.device, optional
        Where to put the model; default: the device setting it was saved with.

    Raises
    ------
    ValueError
        The file is missing parts, truncated, corrupt or not an ewclab learner; the
        message names the file. Nothing is returned half-loaded.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(f"{os.fspath(path)!r} is not a readable ewclab model file: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(path)!r} is not an ewclab model file (no {FORMAT!r} tag)")
    if payload.get("version") != VERSION:
        raise ValueError(
            f"{os.fspath(path)!r} has format version {payload.get('version')!r}, "
            f"this ewclab reads version {VERSION}"
        )
    try:
        return _rebuild(payload, device)
    except Exception as exc:
        raise ValueError(f"{os.fspath(path)!r} holds an invalid ewclab model: {exc}") from exc


def _rebuild(payload: dict[str, Any], device: str | torch.device | None) -> Learner:
    cls = CLASSES[payload["class"]]
    config = dict(payload["config"])
    if device is not None:
        config["device"] = device
    with torch.random.fork_rng(devices=[]):  # the fresh weights are overwritten anyway
        model = cls(**config)
    model.load_state_dict(payload["model"])
    model.optimizer.load_state_dict(payload["optimizer"])
    model.ewc.load_state_dict(payload["ewc"])
    model.buffer.load_state_dict(payload["buffer"])
    model.shuffle_rng.set_state(payload["shuffle_rng"])
    return model
