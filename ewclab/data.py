"""Tasks and batches: bundled and full MNIST / Fashion-MNIST, permuted and split tasks,
the NCHW layout models want, and the seed's ``batchify`` generator (fixed).

>>> task = load_task("mnist")                      # bundled, offline
>>> task.x_train.shape, task.x_train.dtype         # the images as stored
((4000, 28, 28), dtype('uint8'))
>>> task.X_train.shape                             # as the learners take them
(4000, 1, 28, 28)
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ewclab.idx import read_idx
from ewclab.sources import FILES, bundled_folder, find_full
from ewclab.validation import check_bool, check_int, check_option, check_seed

__all__ = [
    "CLASSES",
    "Task",
    "batchify",
    "load_task",
    "permute_task",
    "read_idx",
    "split_task",
    "to_nchw",
]

#: Class names of each dataset, indexed by label.
CLASSES = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ],
}

Array = np.ndarray | torch.Tensor


@dataclass(frozen=True, repr=False)
class Task:
    """One task of a continual-learning sequence: a name, class names, train and test data.

    Attributes
    ----------
    name : str
        e.g. ``"mnist"``, ``"fashion-mnist"``, ``"mnist-perm1"``.
    classes : list of str
        Class name of each label.
    x_train, x_test : numpy.ndarray
        uint8 images, shape ``(N, 28, 28)``, as stored in the dataset's files.
    y_train, y_test : numpy.ndarray
        int64 labels in ``[0, len(classes))``, shape ``(N,)``.
    X_train, X_test : numpy.ndarray
        The same images in the ``(N, 1, 28, 28)`` layout the learners take (read-only
        properties, views of ``x_train`` and ``x_test``): ``model.fit(task.X_train,
        task.y_train)``, ``model.score(task.X_test, task.y_test)``.
    """

    name: str
    classes: list[str]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if len(x) != len(y):
                raise ValueError(
                    f"task {self.name!r}: x_{split} has {len(x)} images "
                    f"but y_{split} has {len(y)} labels"
                )

    @property
    def X_train(self) -> np.ndarray:
        """The training images with a channel axis, ``(N, 1, H, W)``: what ``partial_fit``,
        ``fit`` and ``consolidate`` take (a view of ``x_train``, no copy)."""
        return self.x_train[:, None]  # (N, H, W) -> (N, 1, H, W)

    @property
    def X_test(self) -> np.ndarray:
        """The test images with a channel axis, ``(N, 1, H, W)``: what ``score`` and
        ``predict`` take (a view of ``x_test``, no copy)."""
        return self.x_test[:, None]  # (N, H, W) -> (N, 1, H, W)

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(classes)``)."""
        return len(self.classes)

    def __repr__(self) -> str:
        return (
            f"Task({self.name!r}, {self.num_classes} classes, "
            f"train={len(self.x_train)}, test={len(self.x_test)}, "
            f"images={tuple(self.x_train.shape[1:])})"
        )


def load_task(
    name: str,
    source: str = "bundled",
    root: str | os.PathLike | None = None,
    download: bool = False,
) -> Task:
    """Load MNIST or Fashion-MNIST as a :class:`Task`.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
        The dataset.
    source : {"bundled", "full"}
        ``"bundled"`` (default) reads the 4,000 train / 1,000 test subset shipped inside
        ewclab: offline, always available. ``"full"`` reads the 60,000 / 10,000 original
        files from ``root`` (torchvision's ``root/MNIST/raw`` layout or a flat folder),
        then from Debian's ``/usr/share/datasets/fashion-mnist``, then downloads them
        through torchvision when ``download=True``.
    root : str or path-like, optional
        Folder for the full data; defaults to ``$EWCLAB_DATA`` or ``~/.cache/ewclab``.
    download : bool
        Allow a download when the full files are found nowhere (needs the network).

    Raises
    ------
    TypeError
        ``name`` or ``source`` not a string, ``download`` not a bool, ``root`` not a path.
    ValueError
        Unknown name or source, or a corrupt IDX file (the message names the file).
    FileNotFoundError
        ``source="full"`` and the files are nowhere (the message lists where it looked).
    """
    check_option(name, "name", tuple(CLASSES))
    check_option(source, "source", ("bundled", "full"))
    download = check_bool(download, "download")
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a folder path (str or os.PathLike) or None, got {root!r}")
    if source == "bundled":
        folder = bundled_folder(name)
        files = {key: folder / f"{stem}.gz" for key, stem in FILES.items()}
    else:
        files = find_full(name, root=root, download=download)
    arrays = {}
    for split in ("train", "test"):
        images = read_idx(files[split, "images"])
        labels = read_idx(files[split, "labels"]).astype(np.int64)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"{files[split, 'images']} and {files[split, 'labels']} do not match: "
                f"expected images (N, H, W) and labels (N,), got {images.shape} "
                f"and {labels.shape}"
            )
        if labels.size and labels.max() >= len(CLASSES[name]):
            raise ValueError(
                f"{files[split, 'labels']}: label {labels.max()} is outside "
                f"[0, {len(CLASSES[name])})"
            )
        arrays[f"x_{split}"], arrays[f"y_{split}"] = images, labels
    return Task(name=name, classes=list(CLASSES[name]), **arrays)


def to_nchw(x: Array, channels: int = 3) -> Array:
    """Bring images into the ``(N, channels, H, W)`` layout models want.

    Accepts ``(N, H, W)`` (grayscale), ``(N, H, W, C)`` and ``(N, C, H, W)`` with
    ``C`` in {1, 3}; grayscale is repeated to 3 channels when ``channels=3`` (what the
    seed did by hand with ``numpy.repeat`` and ``transpose``). The dtype is kept, numpy
    stays numpy and tensors stay tensors. For images from elsewhere: a :class:`Task`'s
    ``X_train`` and ``X_test`` already have the ``(N, 1, H, W)`` layout.

    Raises
    ------
    ValueError
        For any other number of dimensions, for a shape where both the second and the
        last axis could be channels (e.g. ``(N, 3, 5, 3)``), or when 3-channel images
        are asked to become 1-channel.
    """
    check_option(check_int(channels, "channels"), "channels", (1, 3))
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        first, last = x.shape[1] in (1, 3), x.shape[3] in (1, 3)
        if first and last:
            raise ValueError(
                f"ambiguous image shape {tuple(x.shape)}: both axis 1 and axis 3 could "
                "be channels; pass (N, C, H, W) with H, W > 3"
            )
        if last:
            x = x.permute(0, 3, 1, 2) if isinstance(x, torch.Tensor) else x.transpose(0, 3, 1, 2)
        elif not first:
            raise ValueError(
                f"expected images (N, H, W), (N, H, W, C) or (N, C, H, W) with C in "
                f"(1, 3), got shape {tuple(x.shape)}"
            )
    else:
        raise ValueError(
            f"expected images with 3 or 4 dimensions ((N, H, W), (N, H, W, C) or "
            f"(N, C, H, W)), got {x.ndim} dimensions with shape {tuple(x.shape)}"
        )
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1:
        return x.repeat(1, 3, 1, 1) if isinstance(x, torch.Tensor) else np.repeat(x, 3, axis=1)
    raise ValueError(f"cannot turn {x.shape[1]}-channel images into {channels}-channel ones")


def permute_task(task: Task, seed: int) -> Task:
    """The same task with one fixed pixel permutation applied to every image.

    Permuted MNIST (Goodfellow et al. 2013; the EWC paper's Fig. 2): each seed gives a
    new task of equal difficulty. The permutation is drawn from
    ``numpy.random.default_rng(seed)``; the new task is named ``"<name>-perm<seed>"``.
    """
    seed = check_seed(seed, none_ok=False)
    h, w = task.x_train.shape[1:]
    perm = np.random.default_rng(seed).permutation(h * w)

    def shuffle(x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), -1)[:, perm].reshape(len(x), h, w)

    return Task(
        name=f"{task.name}-perm{seed}",
        classes=list(task.classes),
        x_train=shuffle(task.x_train),
        y_train=task.y_train.copy(),
        x_test=shuffle(task.x_test),
        y_test=task.y_test.copy(),
    )


def split_task(task: Task, classes: Sequence[int], remap: bool = True) -> Task:
    """The task restricted to some of its classes (split MNIST).

    Parameters
    ----------
    task : Task
    classes : sequence of int
        Labels to keep, e.g. ``(0, 1)``.
    remap : bool
        If True (default) labels become ``0 .. len(classes) - 1`` in the order given and
        ``classes`` of the result lists only the kept names; if False the original labels
        and class list are kept.
    """
    keep = [check_int(c, f"classes[{i}]") for i, c in enumerate(classes)]
    if not keep or len(set(keep)) != len(keep):
        raise ValueError(f"expected distinct classes to keep, got {list(classes)!r}")
    bad = [c for c in keep if not 0 <= c < task.num_classes]
    if bad:
        raise ValueError(f"classes {bad} are outside [0, {task.num_classes}) for {task.name!r}")
    lookup = np.full(task.num_classes, -1, dtype=np.int64)
    lookup[keep] = np.arange(len(keep)) if remap else keep
    arrays = {}
    for split in ("train", "test"):
        x, y = getattr(task, f"x_{split}"), getattr(task, f"y_{split}")
        mask = np.isin(y, keep)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x[mask], lookup[y[mask]]
    names = [task.classes[c] for c in keep] if remap else list(task.classes)
    suffix = "".join(str(c) for c in keep)
    return Task(name=f"{task.name}-split{suffix}", classes=names, **arrays)


def batchify(
    X: Array,
    y: Array,
    batch_size: int = 1000,
    shuffle: bool = False,
    seed: int | None = None,
    *,
    epochs: int | None = None,
    steps: int | None = None,
) -> Iterator[tuple[Array, Array]]:
    """Full-size batches that wrap around the data (the seed's generator, fixed); endless
    unless ``epochs`` or ``steps`` bounds them.

    Every batch has exactly ``batch_size`` samples. At the end of the data a batch is
    completed from the start of the next pass, and the next batch continues exactly
    where that fill stopped, so over ``k`` passes every sample is yielded ``k`` times.
    (The seed's version restarted at ``batch_size`` after a fill and silently skipped
    samples on every wrap.) Works when ``len(X) < batch_size``.

    Without ``epochs`` or ``steps`` the generator never ends, as in the seed: take what
    you need with ``next`` or ``itertools.islice``. ``for X_b, y_b in batchify(X, y)``
    needs a bound:

    >>> X, y = np.arange(10)[:, None], np.arange(10)
    >>> [len(b) for b, _ in batchify(X, y, batch_size=4, epochs=1)]
    [4, 4, 2]
    >>> [len(b) for b, _ in batchify(X, y, batch_size=4, steps=3)]
    [4, 4, 4]

    Parameters
    ----------
    X, y : numpy.ndarray or torch.Tensor
        Samples and labels, indexed along the first axis.
    batch_size : int
        Samples per batch (default 1000, as in the seed).
    shuffle : bool
        Visit the samples in a new random order on every pass.
    seed : int, optional
        Seed of the shuffling.
    epochs : int, optional, keyword only
        Stop after this many passes: every sample is yielded exactly ``epochs`` times,
        and the last batch holds what is left (it may be smaller than ``batch_size``).
    steps : int, optional, keyword only
        Stop after this many full-size batches.

    Yields
    ------
    (X_batch, y_batch)
        Aligned batches of the same type as the inputs.

    Raises
    ------
    TypeError
        X or y not a numpy array or tensor, a non-integer ``batch_size``, ``epochs`` or
        ``steps``, a non-bool ``shuffle``.
    ValueError
        Empty data, ``len(X) != len(y)``, ``batch_size``, ``epochs`` or ``steps`` < 1,
        or both ``epochs`` and ``steps`` given. Raised at the call, not at the first
        ``next``.
    """
    for name, a in (("X", X), ("y", y)):
        if not isinstance(a, (np.ndarray, torch.Tensor)) or a.ndim == 0:
            raise TypeError(f"{name} must be a numpy array or torch tensor, got {a!r:.80}")
    n = len(X)
    if n == 0:
        raise ValueError("batchify needs at least one sample, got empty X")
    if len(y) != n:
        raise ValueError(f"X and y must have the same length, got {n} and {len(y)}")
    batch_size = check_int(batch_size, "batch_size", low=1)
    shuffle = check_bool(shuffle, "shuffle")
    seed = check_seed(seed)
    if epochs is not None and steps is not None:
        raise ValueError(f"give epochs or steps, not both; got epochs={epochs!r}, steps={steps!r}")
    total = None  # samples to yield; None is endless
    if epochs is not None:
        total = check_int(epochs, "epochs", low=1) * n
    elif steps is not None:
        total = check_int(steps, "steps", low=1) * batch_size
    rng = np.random.default_rng(seed)
    return _batches(X, y, n, batch_size, shuffle, rng, total)


def _batches(
    X: Array,
    y: Array,
    n: int,
    batch_size: int,
    shuffle: bool,
    rng: np.random.Generator,
    total: int | None,
) -> Iterator[tuple[Array, Array]]:
    order = rng.permutation(n) if shuffle else np.arange(n)
    pos = 0
    while total is None or total > 0:
        parts = []
        need = batch_size if total is None else min(batch_size, total)
        if total is not None:
            total -= need
        while need:
            take = order[pos : pos + need]
            parts.append(take)
            need -= len(take)
            pos += len(take)
            if pos == n:
                pos = 0
                if shuffle:
                    order = rng.permutation(n)
        idx = np.concatenate(parts)
        yield _take(X, idx), _take(y, idx)


def _take(a: Array, idx: np.ndarray) -> Array:
    return a[torch.from_numpy(idx)] if isinstance(a, torch.Tensor) else a[idx]
