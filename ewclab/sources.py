"""Where the IDX files of a dataset are: bundled with ewclab, in a folder, or downloaded.

Bundled files live in ``ewclab/datasets/<name>/`` (see the data card there). Full
datasets are looked for, in order, in ``root`` (torchvision's layout
``root/MNIST/raw/`` or ``root/FashionMNIST/raw/``, then ``root`` itself as a flat
folder), in Debian's ``dataset-fashion-mnist`` location, and only with ``download=True``
fetched through torchvision's own dataset classes into ``root``.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

#: The four IDX files of a dataset, keyed by split and kind.
FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}

#: torchvision's folder name for each dataset (``root/<folder>/raw``).
TORCHVISION_FOLDER = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}

#: Folders that operating-system packages install the full data into.
SYSTEM_FOLDERS = {"fashion-mnist": [Path("/usr/share/datasets/fashion-mnist")]}


def default_root() -> Path:
    """The folder full datasets are looked for and downloaded into when no root is given.

    ``$EWCLAB_DATA`` if set, else ``~/.cache/ewclab``.
    """
    return Path(os.environ.get("EWCLAB_DATA", Path.home() / ".cache" / "ewclab"))


def bundled_folder(name: str) -> Path:
    """The folder holding the bundled subset of ``name`` inside the installed package."""
    return Path(str(resources.files("ewclab") / "datasets" / name))


def _complete(folder: Path) -> dict[tuple[str, str], Path] | None:
    """The four files in ``folder`` (each ``.gz`` or raw), or None if any is missing."""
    found = {}
    for key, stem in FILES.items():
        for candidate in (folder / f"{stem}.gz", folder / stem):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            return None
    return found


def candidate_folders(name: str, root: str | os.PathLike | None) -> list[Path]:
    """Every folder looked in for the full dataset ``name``, in search order."""
    base = Path(root) if root is not None else default_root()
    folders = [base / TORCHVISION_FOLDER[name] / "raw", base]
    return folders + SYSTEM_FOLDERS.get(name, [])


def find_full(
    name: str, root: str | os.PathLike | None = None, download: bool = False
) -> dict[tuple[str, str], Path]:
    """Locate (or, with ``download=True``, fetch) the four IDX files of a full dataset.

    Raises
    ------
    FileNotFoundError
        If no folder holds all four files and ``download`` is False; the message names
        every folder looked in and the two ways to fix it.
    """
    folders = candidate_folders(name, root)
    for folder in folders:
        found = _complete(folder)
        if found is not None:
            return found
    if download:
        return _download(name, Path(root) if root is not None else default_root())
    looked = "\n".join(f"  - {folder}" for folder in folders)
    raise FileNotFoundError(
        f"the full {name!r} dataset was not found. Looked for its four IDX files "
        f"({', '.join(FILES.values())}, each raw or .gz) in:\n{looked}\n"
        "Fix it in one of two ways: put the files in one of these folders "
        "(e.g. pass root='path/to/folder'), or, when online, call "
        f"load_task({name!r}, source='full', download=True)."
    )


def _download(name: str, root: Path) -> dict[tuple[str, str], Path]:
    """Download through torchvision's dataset classes into ``root/<Folder>/raw``."""
    from torchvision import datasets

    cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}[name]
    for train in (True, False):
        cls(str(root), train=train, download=True)
    found = _complete(root / TORCHVISION_FOLDER[name] / "raw")
    if found is None:
        raise FileNotFoundError(f"torchvision's download left no IDX files in {root}")
    return found
