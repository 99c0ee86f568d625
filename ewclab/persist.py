"""Save and load learners: weights, optimiser, EWC state (every task's F and θ*, λ, mode,
γ), task buffer and shuffling generator, with the class name and constructor keywords
so that loading rebuilds the same architecture.

Which classes :func:`load` can rebuild is the registry :data:`CLASSES`: every subclass of
:class:`ewclab.learner.Learner` registers itself when it is defined (its
``__init_subclass__`` calls :func:`register`), so a user's own learner saves and loads
like the built-in ones, provided its class is defined before loading. This module does
not import the learner or the models: the learner imports it.

The file is a ``torch.save`` of plain data (tensors, numbers, strings, lists, dicts) and
is read with ``torch.load(weights_only=True)``, which never unpickles arbitrary objects.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from typing import Any

import torch
from torch import Tensor, nn

from ewclab.validation import check_param_groups

FORMAT = "ewclab.learner"
VERSION = 1

#: The classes ``load`` can rebuild, by class name (filled by :func:`register`).
CLASSES: dict[str, type[nn.Module]] = {}


def register(cls: type[nn.Module]) -> type[nn.Module]:
    """Let :func:`save` write and :func:`load` rebuild instances of ``cls``.

    Called for every subclass of :class:`ewclab.learner.Learner` as it is defined. A
    class defined again under the same name (a notebook cell run twice) replaces the
    earlier one. Returns ``cls``.
    """
    CLASSES[cls.__name__] = cls
    return cls


def save(model: nn.Module, path: str | os.PathLike) -> None:
    """Write ``model`` to ``path`` atomically.

    The file is written to a temporary file in the same folder, flushed to disk, then
    moved over ``path`` with ``os.replace``: a save that fails part-way (full disk, file
    size limit, interruption) leaves any previous file at ``path`` as it was.

    Raises
    ------
    TypeError
        ``model``'s class is not the one registered under its name in :data:`CLASSES`.
    OSError
        The file could not be written; the message names ``path``.
    """
    name = type(model).__name__
    if CLASSES.get(name) is not type(model):
        raise TypeError(
            f"model must be an instance of a registered learner class (a subclass of "
            f"ewclab.learner.Learner, as last defined), got {name} "
            f"({'redefined since' if name in CLASSES else 'not registered'})"
        )
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "class": type(model).__name__,
        "config": dict(model.config),
        "model": model.state_dict(),
        "optimizer": model.optimizer.state_dict(),
        "ewc": model.ewc.state_dict(),
        "buffer": model.buffer.state_dict(),
        "shuffle_rng": model.shuffle_rng.get_state(),
    }
    _write_atomically(payload, os.fspath(path))


def _write_atomically(payload: dict[str, Any], path: str) -> None:
    """``torch.save`` to a temporary file next to ``path``, fsync, then ``os.replace``."""
    folder, name = os.path.split(os.path.abspath(path))
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = 0o644
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot save the model to {path!r}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise OSError(exc.errno, f"cannot save the model to {path!r}: {exc.strerror}") from exc
        if isinstance(exc, RuntimeError):  # torch's writer reports I/O errors this way
            raise OSError(
                f"cannot save the model to {path!r}: the file could not be written completely "
                "(disk full or file size limit?); any previous file there is unchanged"
            ) from exc
        raise


def load(path: str | os.PathLike, device: str | torch.device | None = None) -> nn.Module:
    """Rebuild the learner saved at ``path`` (of the class it was saved as).

    Everything in the file is checked before the model is built: the class and every
    constructor setting (the same checks as the constructor), the weights' names,
    shapes and finiteness against a shape-only (``device="meta"``) copy of the
    architecture, and the optimiser's settings and state. So a small file whose
    settings describe a huge network is refused without allocating it.

    Parameters
    ----------
    path : str or os.PathLike
    device : str or torch.device, optional
        Where to put the model; default: the device setting it was saved with.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is missing parts, truncated, corrupt, inconsistent (shapes, sizes,
        non-finite values, settings out of range) or not an ewclab learner; the message
        names the file. Nothing is returned half-loaded.
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


def _rebuild(payload: dict[str, Any], device: str | torch.device | None) -> nn.Module:
    name = payload["class"]
    if name not in CLASSES:
        raise ValueError(
            f"it holds a {name!r}, a class not defined in this session (known: "
            f"{sorted(CLASSES)}); define or import that Learner subclass first"
        )
    cls = CLASSES[name]
    config = payload["config"]
    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        raise TypeError(f"config must be a dict of settings, got {config!r:.100}")
    config = dict(config, device=config.get("device", "auto") if device is None else device)
    with torch.random.fork_rng(devices=[]):  # the fresh weights are overwritten anyway
        shapes = cls(**{**config, "device": "meta"})  # checks config, allocates nothing
        _check_weights(payload["model"], shapes.state_dict())
        _check_optimizer(payload["optimizer"], shapes)
        model = cls(**config)
    model.load_state_dict(payload["model"])
    model.optimizer.load_state_dict(payload["optimizer"])
    model.ewc.load_state_dict(payload["ewc"])
    model.buffer.load_state_dict(payload["buffer"])
    model.shuffle_rng.set_state(payload["shuffle_rng"])
    return model


def _check_weights(weights: Any, expected: dict[str, Tensor]) -> None:
    """The saved weights have exactly the architecture's names and shapes, all finite."""
    if not isinstance(weights, dict) or set(weights) != set(expected):
        got = sorted(weights) if isinstance(weights, dict) else type(weights).__name__
        raise ValueError(f"weights must be named {sorted(expected)}, got {got}")
    for name, ref in expected.items():
        t = weights[name]
        if not torch.is_tensor(t) or t.shape != ref.shape or t.dtype != ref.dtype:
            what = (t.dtype, tuple(t.shape)) if torch.is_tensor(t) else type(t).__name__
            raise ValueError(f"weight {name!r} must be {ref.dtype} {tuple(ref.shape)}, got {what}")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"weight {name!r} holds NaN or inf values")


def _check_optimizer(state: Any, shapes: Any) -> None:
    """Settings in range (same checks as the learner's) and per-parameter state tensors
    of their parameter's shape (or scalars, like Adam's step count), all finite."""
    params = shapes._params
    groups = state["param_groups"]
    if not isinstance(groups, list) or len(groups) != 1 or not isinstance(groups[0], dict):
        raise ValueError("the optimiser state must have one parameter group")
    if list(groups[0]["params"]) != list(range(len(params))):
        raise ValueError(f"the optimiser must cover the {len(params)} parameters in order")
    check_param_groups(groups)
    per_param = state["state"]
    if not isinstance(per_param, dict) or not set(per_param) <= set(range(len(params))):
        raise ValueError("the optimiser state must be keyed by parameter index")
    for index, entries in per_param.items():
        for key, t in entries.items():
            if not torch.is_tensor(t):
                continue
            if t.shape != params[index].shape and t.numel() != 1:
                raise ValueError(
                    f"optimizer state {key!r} of parameter {index} must have shape "
                    f"{tuple(params[index].shape)}, got {tuple(t.shape)}"
                )
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise ValueError(f"optimizer state {key!r} of parameter {index} is not finite")
