"""Every check of ewclab's public arguments, in one module, with one rule.

Parameters (one helper per kind, like scikit-learn's ``_param_validation``):
:func:`check_int` (an int in a range), :func:`check_real` (a finite real in an interval),
:func:`check_option` (one of a set), :func:`check_bool` and :func:`check_seed`; built on
them, :func:`check_lr`, :func:`check_momentum`, :func:`check_param_groups` (an optimiser's
settings, checked before every training call) and :func:`check_device`. The rule: numpy
scalars are numbers (``numbers.Integral`` / ``numbers.Real``), bools are not; a wrong type
raises ``TypeError``, a wrong value ``ValueError``; the message reads
``<name> must be <expected>, got <value!r>``. Each helper returns the value as a plain
Python ``int`` / ``float``.

Batches: `check_batch` only looks at its inputs (no copies of pixel data, nothing
mutated) and returns tensors in their original dtype; `to_float_input` then scales and
moves them. Splitting the two lets `fit` validate a whole data set once and convert batch
by batch.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

#: Largest finite float32: settings that end up in float32 tensors (λ, lr) stay below it.
FLOAT32_MAX = float(torch.finfo(torch.float32).max)

#: Seeds are what ``torch.Generator.manual_seed`` takes without wrapping: [0, 2**64).
SEED_MAX = 2**64 - 1

T = TypeVar("T")


def _must(name: str, expected: str, value: Any) -> str:
    """The one message format: ``<name> must be <expected>, got <value!r>``."""
    return f"{name} must be {expected}, got {value!r}"


def check_int(
    value: Any, name: str, *, low: int | None = None, high: int | None = None
) -> int:
    """Return ``value`` as an ``int`` after checking ``low <= value <= high`` (bounds optional).

    Raises
    ------
    TypeError
        ``value`` is not an integer (bools and floats such as ``2.0`` are not).
    ValueError
        ``value`` is outside the range.
    """
    expected = "an int" + _range_text(low, high, False, False)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(_must(name, expected, value))
    number = int(value)
    if (low is not None and number < low) or (high is not None and number > high):
        raise ValueError(_must(name, expected, number))
    return number


def check_real(
    value: Any,
    name: str,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a finite ``float`` in the interval from ``low`` to ``high``.

    ``low_open`` / ``high_open`` exclude the bound. NaN and ±inf are always refused.

    Raises
    ------
    TypeError
        ``value`` is not a real number (bools, strings and complex numbers are not).
    ValueError
        ``value`` is NaN, infinite or outside the interval.
    """
    def expected() -> str:  # built only on failure: lr and momentum pass here every step
        return "a finite real number" + _range_text(low, high, low_open, high_open)

    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(_must(name, expected(), value))
    number = float(value)
    too_low = number <= low if low_open else number < low
    too_high = number >= high if high_open else number > high
    if not math.isfinite(number) or too_low or too_high:
        raise ValueError(_must(name, expected(), value))
    return number


def check_option(value: Any, name: str, options: Collection[T]) -> T:
    """Return ``value`` if it is one of ``options``.

    Raises
    ------
    TypeError
        The options are all strings and ``value`` is not one (e.g. a list).
    ValueError
        ``value`` is not among the options.
    """
    expected = f"one of {tuple(options)!r}"
    if all(isinstance(o, str) for o in options) and not isinstance(value, str):
        raise TypeError(_must(name, expected, value))
    if not any(value == o for o in options):
        raise ValueError(_must(name, expected, value))
    return value


def check_bool(value: Any, name: str) -> bool:
    """Return ``value`` as a ``bool``; only ``True``/``False`` (numpy's too) are accepted.

    Raises
    ------
    TypeError
        Anything else, e.g. ``0``, ``"yes"`` or ``None``.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_seed(value: Any, name: str = "seed", *, none_ok: bool = True) -> int | None:
    """Return a random seed as an ``int`` in ``[0, 2**64)`` (``None`` passes if ``none_ok``).

    Raises
    ------
    TypeError
        Not an integer (or ``None`` when not allowed).
    ValueError
        Negative or ``>= 2**64`` (what ``torch.Generator.manual_seed`` can take).
    """
    if value is None and none_ok:
        return None
    return check_int(value, name, low=0, high=SEED_MAX)


def check_param_groups(groups: list[dict[str, Any]]) -> None:
    """Check an optimiser's settings: ``lr`` a finite number in (0, float32's largest],
    ``momentum`` and each of ``betas`` in [0, 1), every other number finite.

    Raises ``TypeError`` / ``ValueError`` naming the setting, e.g.
    ``optimizer.param_groups[0]['lr'] must be a finite real number ..., got nan``.
    """
    for i, group in enumerate(groups):
        for key, value in group.items():
            if key == "lr":
                check_lr(value, _setting(i, key))
            elif key == "momentum":
                check_momentum(value, _setting(i, key))
            elif key == "betas":
                for j, beta in enumerate(value):
                    check_momentum(beta, f"{_setting(i, key)}[{j}]")
            elif type(value) is float and not math.isfinite(value):
                raise ValueError(_must(_setting(i, key), "a finite number", value))


def _setting(i: int, key: str) -> str:
    return f"optimizer.param_groups[{i}][{key!r}]"


def check_lr(value: Any, name: str = "lr") -> float:
    """A learning rate: a finite real number in (0, float32's largest]."""
    return check_real(value, name, low=0, low_open=True, high=FLOAT32_MAX)


def check_momentum(value: Any, name: str = "momentum") -> float:
    """A momentum or Adam beta: a real number in [0, 1)."""
    return check_real(value, name, low=0, high=1, high_open=True)


def check_device(device: Any) -> torch.device:
    """Return ``torch.device(device)``; ``"auto"`` is CUDA when available, else the CPU.

    Raises
    ------
    TypeError
        Not a string or ``torch.device``.
    ValueError
        A name torch does not know, or CUDA on a machine without it.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    expected = "'auto', 'cpu', 'cuda', 'cuda:<n>' or a torch.device"
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be {expected}, got {device!r}")
    try:
        out = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device must be {expected}, got {device!r}") from None
    if out.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device must be one this machine has (no CUDA here), got {device!r}")
    return out


def _range_text(
    low: float | None, high: float | None, low_open: bool, high_open: bool
) -> str:
    """`` >= 1``, `` in [0, 1)``, `` <= 3.4e+38`` or nothing, for a message."""
    has_low = low is not None and low != -math.inf
    has_high = high is not None and high != math.inf
    if has_low and has_high:
        return f" in {'(' if low_open else '['}{_bound(low)}, {_bound(high)}" + (
            ")" if high_open else "]"
        )
    if has_low:
        return f" {'>' if low_open else '>='} {_bound(low)}"
    if has_high:
        return f" {'<' if high_open else '<='} {_bound(high)}"
    return ""


def _bound(x: float) -> str:
    if x == SEED_MAX:
        return "2**64 - 1"
    return str(x) if isinstance(x, int) else f"{x:g}"


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
    if name == "y" and isinstance(a, (list, tuple)):
        a = np.asarray(a)
    if isinstance(a, torch.Tensor) and name == "y" and a.dtype in _WIDE_UNSIGNED:
        a = a.cpu().numpy()  # torch has no min/max for uint16/32/64: check them in numpy
    if isinstance(a, torch.Tensor):
        return a
    if isinstance(a, np.ndarray):
        if a.dtype == object:
            raise TypeError(f"{name} must hold numbers, got a numpy array of dtype object")
        if name == "y" and a.dtype.kind == "u" and a.itemsize > 1:
            if a.size and a.max() > np.iinfo(np.int64).max:
                raise ValueError(f"labels must be class indices, got a value of {a.max()}")
            a = a.astype(np.int64)
        return torch.from_numpy(np.ascontiguousarray(a))
    raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(a).__name__}")


_WIDE_UNSIGNED = tuple(
    getattr(torch, name) for name in ("uint16", "uint32", "uint64") if hasattr(torch, name)
)


def _check_images(X: torch.Tensor, spec: InputSpec) -> None:
    if X.dtype != torch.uint8 and not X.dtype.is_floating_point:
        raise TypeError(
            f"X must be uint8 pixels (0-255) or floating point, got dtype {X.dtype}"
        )
    if X.ndim != 4:
        hint = ""
        if X.ndim == 3:
            hint = ("; for grayscale (N, H, W) images use X[:, None] or ewclab.data.to_nchw "
                    "(a Task's X_train and X_test already have that layout)")
        raise ValueError(f"X must have 4 dimensions (N, C, H, W), got shape {tuple(X.shape)}{hint}")
    n, c, h, w = X.shape
    if n == 0:
        raise ValueError(f"X is empty (shape {tuple(X.shape)}); need at least one sample")
    if spec.channels is not None and c not in (1, spec.channels):
        if X.shape[-1] in (1, 3, spec.channels):
            raise ValueError(
                f"X has shape {tuple(X.shape)}, which looks like channels-last (N, H, W, C); "
                f"expected (N, C, H, W) with C = {spec.channels}: use X.transpose(0, 3, 1, 2) "
                "(numpy) or X.permute(0, 3, 1, 2) (torch)"
            )
        raise ValueError(
            f"X has {c} channels (shape {tuple(X.shape)}), the model expects {spec.channels}"
            + (" or 1 (repeated)" if spec.channels > 1 else "")
        )
    if spec.channels is None and w == 3 and min(c, h) > 3:  # (N, H, W, 3), e.g. (N, 28, 28, 3)
        raise ValueError(
            f"X has shape {tuple(X.shape)}, which looks like 3-channel channels-last "
            "(N, H, W, C); a flattening network needs (N, C, H, W): use "
            "X.transpose(0, 3, 1, 2) (numpy) or X.permute(0, 3, 1, 2) (torch)"
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
    if X.dtype.is_floating_point:
        _check_finite_float32(X)


def _check_finite_float32(X: torch.Tensor) -> None:
    """Every value finite and, once converted to the network's float32, still finite."""
    if X.dtype.itemsize <= 4:
        # one pass: a finite sum means every value is finite (NaN and inf propagate)
        if math.isfinite(float(X.sum())) or bool(torch.isfinite(X).all()):
            return
        raise ValueError("X contains NaN or inf values; expected finite numbers")
    lo, hi = (float(v) for v in torch.aminmax(X))  # NaN if any value is NaN
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("X contains NaN or inf values; expected finite numbers")
    if max(-lo, hi) > FLOAT32_MAX:
        raise ValueError(
            f"X holds values up to {max(-lo, hi):.3g} in magnitude, beyond float32's "
            f"{FLOAT32_MAX:.3g}; the network computes in float32 (rescale the input)"
        )


def _check_labels(y: torch.Tensor, n: int, num_classes: int) -> None:
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D with shape (N,), got shape {tuple(y.shape)}")
    if len(y) != n:
        raise ValueError(f"X has {n} samples but y has {len(y)} labels")
    lo, hi = (int(v) for v in torch.aminmax(y))
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
