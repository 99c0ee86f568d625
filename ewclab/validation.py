"""Input validation for the learners: one helper, messages that say what was expected.

`check_batch` only looks at its inputs (no copies of pixel data, nothing mutated) and
returns tensors in their original dtype; `to_float_input` then scales and moves them.
Splitting the two lets `fit` validate a whole data set once and convert batch by batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class InputSpec:
    """What a network accepts.

    Parameters
    ----------
    num_classes : int
        Labels must lie in ``[0, num_classes)``.
    channels : int or None
        Channels the network wants; 1-channel input is repeated to match. ``None`` means
        any channel count (a flattening network such as the MLP).
    min_size : int
        Smallest image height and width the network can process.
    features : int or None
        Required ``C * H * W`` per sample (the MLP's input width), or ``None``.
    """

    num_classes: int
    channels: int | None = None
    min_size: int = 1
    features: int | None = None


def _as_tensor(a: object, name: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a
    if isinstance(a, np.ndarray):
        if a.dtype == object:
            raise TypeError(f"{name} must hold numbers, got a numpy array of dtype object")
        return torch.from_numpy(np.ascontiguousarray(a))
    if name == "y" and isinstance(a, (list, tuple)):
        return torch.as_tensor(np.asarray(a))
    raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(a).__name__}")


def _check_images(X: torch.Tensor, spec: InputSpec) -> None:
    if X.dtype != torch.uint8 and not X.dtype.is_floating_point:
        raise TypeError(
            f"X must be uint8 pixels (0-255) or floating point, got dtype {X.dtype}"
        )
    if X.ndim != 4:
        hint = ""
        if X.ndim == 3:
            hint = "; for grayscale (N, H, W) images use X[:, None] or ewclab.data.to_nchw"
        raise ValueError(f"X must have 4 dimensions (N, C, H, W), got shape {tuple(X.shape)}{hint}")
    n, c, h, w = X.shape
    if n == 0:
        raise ValueError(f"X is empty (shape {tuple(X.shape)}); need at least one sample")
    if spec.channels is not None and c not in (1, spec.channels):
        if X.shape[-1] in (1, spec.channels):
            raise ValueError(
                f"X has shape {tuple(X.shape)}, which looks like channels-last (N, H, W, C); "
                f"expected (N, C, H, W) with C = {spec.channels}: use X.transpose(0, 3, 1, 2) "
                "(numpy) or X.permute(0, 3, 1, 2) (torch)"
            )
        raise ValueError(
            f"X has {c} channels (shape {tuple(X.shape)}), the model expects {spec.channels}"
            + (" or 1 (repeated)" if spec.channels > 1 else "")
        )
    if spec.features is not None and c * h * w != spec.features:
        raise ValueError(
            f"X has C*H*W = {c * h * w} values per sample (shape {tuple(X.shape)}), "
            f"the model expects {spec.features}"
        )
    if min(h, w) < spec.min_size:
        raise ValueError(
            f"images of {h}x{w} are too small for this network: it needs at least "
            f"{spec.min_size}x{spec.min_size}"
        )
    # fast path: a finite sum means every value is finite (NaN and inf propagate)
    if X.dtype.is_floating_point and not bool(torch.isfinite(X.sum())):
        if not bool(torch.isfinite(X).all()):
            raise ValueError("X contains NaN or inf values; expected finite numbers")


def _check_labels(y: torch.Tensor, n: int, num_classes: int) -> None:
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D with shape (N,), got shape {tuple(y.shape)}")
    if len(y) != n:
        raise ValueError(f"X has {n} samples but y has {len(y)} labels")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(
            f"labels must be in [0, {num_classes}), got values from {lo} to {hi}"
        )


def check_batch(
    X: object, y: object = None, spec: InputSpec | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Validate a batch and return it as tensors (original dtype, no pixel copies).

    Parameters
    ----------
    X : numpy.ndarray or torch.Tensor, shape (N, C, H, W)
        uint8 pixels or finite floats.
    y : array-like of int, shape (N,), optional
        Class labels in ``[0, spec.num_classes)``.
    spec : InputSpec
        What the network accepts.

    Returns
    -------
    X : torch.Tensor
    y : torch.Tensor or None

    Raises
    ------
    TypeError
        Wrong container or dtype.
    ValueError
        Wrong shape (ndim, channels-last, channel count, size), empty batch, non-finite
        values, X/y length mismatch or labels out of range.
    """
    if spec is None:
        raise TypeError("check_batch needs an InputSpec")
    Xt = _as_tensor(X, "X")
    _check_images(Xt, spec)
    if y is None:
        return Xt, None
    yt = _as_tensor(y, "y")
    _check_labels(yt, len(Xt), spec.num_classes)
    return Xt, yt


def to_float_input(
    X: torch.Tensor, channels: int | None, device: torch.device
) -> torch.Tensor:
    """Move a checked batch to ``device`` as float32: uint8 scaled to [0, 1], floats as given,
    1 channel repeated to ``channels``."""
    X = X.to(device, non_blocking=True)
    X = X.float().div_(255) if X.dtype == torch.uint8 else X.float()
    if channels is not None and X.shape[1] != channels:
        X = X.expand(-1, channels, -1, -1)
    return X
