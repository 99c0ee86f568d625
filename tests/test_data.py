"""Bundled and full data, IDX reading, the layout learners take (X_train, X_test, to_nchw),
permuted and split tasks."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import ewclab
from ewclab import MLP, AlexNet, TestNet
from ewclab.data import CLASSES, Task, load_task, permute_task, read_idx, split_task, to_nchw
from ewclab.idx import write_idx
from ewclab.scenarios import get_scenario
from ewclab.sources import FILES, bundled_folder

DATASETS = Path(ewclab.__file__).parent / "datasets"


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_bundled_shapes_dtypes_and_balance(name: str) -> None:
    task = load_task(name)
    assert task.name == name
    assert task.classes == CLASSES[name]
    assert task.x_train.shape == (4000, 28, 28) and task.x_test.shape == (1000, 28, 28)
    assert task.x_train.dtype == np.uint8 and task.y_train.dtype == np.int64
    assert np.bincount(task.y_train, minlength=10).tolist() == [400] * 10
    assert np.bincount(task.y_test, minlength=10).tolist() == [100] * 10
    assert task.x_train.max() > 200  # real images, not zeros
    # shuffled, so un-shuffled batches mix the classes
    assert len(np.unique(task.y_train[:50])) >= 8


def test_bundled_train_and_test_are_disjoint() -> None:
    task = load_task("mnist")
    train = {x.tobytes() for x in task.x_train}
    assert not any(x.tobytes() in train for x in task.x_test)


def test_class_names() -> None:
    assert load_task("mnist").classes == [str(d) for d in range(10)]
    assert load_task("fashion-mnist").classes[0] == "T-shirt/top"


def test_data_card_checksums_match_the_files() -> None:
    card = (DATASETS / "README.md").read_text()
    rows = re.findall(r"\| `([\w\-/.]+\.gz)` \| `([0-9a-f]{64})` \|", card)
    assert len(rows) == 8
    for rel, digest in rows:
        assert hashlib.sha256((DATASETS / rel).read_bytes()).hexdigest() == digest, rel
    for licence in ("CC BY-SA 3.0", "MIT"):
        assert licence in card


def test_bundled_files_are_byte_reproducible_gzip() -> None:
    raw = (bundled_folder("mnist") / "t10k-labels-idx1-ubyte.gz").read_bytes()
    assert raw[4:8] == b"\x00\x00\x00\x00"  # gzip mtime = 0


def _write_dataset(folder: Path, n_train: int = 30, n_test: int = 10, gz: bool = True) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("test", n_test)):
        write_idx(folder / f"{FILES[split, 'images']}{suffix}",
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{FILES[split, 'labels']}{suffix}",
                  rng.integers(0, 10, n, dtype=np.uint8))


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize(
    "name, layout", [("mnist", "MNIST/raw"), ("fashion-mnist", "FashionMNIST/raw"),
                     ("mnist", "."), ("fashion-mnist", ".")]
)
def test_full_data_in_both_layouts(tmp_path: Path, name: str, layout: str, gz: bool) -> None:
    _write_dataset(tmp_path / layout, gz=gz)
    task = load_task(name, source="full", root=tmp_path)
    assert task.x_train.shape == (30, 28, 28) and task.y_test.shape == (10,)
    assert task.y_train.dtype == np.int64


def test_full_data_missing_names_every_place_and_both_fixes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ewclab.sources.SYSTEM_FOLDERS", {"fashion-mnist": [tmp_path / "deb"]})
    with pytest.raises(FileNotFoundError) as info:
        load_task("fashion-mnist", source="full", root=tmp_path / "data")
    message = str(info.value)
    for place in (tmp_path / "data" / "FashionMNIST" / "raw", tmp_path / "data", tmp_path / "deb"):
        assert str(place) in message
    assert "root=" in message and "download=True" in message


def test_full_data_default_root_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EWCLAB_DATA", str(tmp_path))
    _write_dataset(tmp_path / "MNIST" / "raw")
    assert len(load_task("mnist", source="full").x_train) == 30


def test_full_data_uses_the_debian_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_dataset(tmp_path / "deb", n_train=12)
    monkeypatch.setattr("ewclab.sources.SYSTEM_FOLDERS", {"fashion-mnist": [tmp_path / "deb"]})
    task = load_task("fashion-mnist", source="full", root=tmp_path / "empty")
    assert len(task.x_train) == 12


def test_download_goes_through_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    class FakeMNIST:
        def __init__(self, root: str, train: bool, download: bool) -> None:
            calls.append((root, train, download))
            _write_dataset(Path(root) / "MNIST" / "raw")

    monkeypatch.setattr("torchvision.datasets.MNIST", FakeMNIST)
    task = load_task("mnist", source="full", root=tmp_path, download=True)
    assert len(task.x_train) == 30
    assert calls == [(str(tmp_path), True, True), (str(tmp_path), False, True)]


def test_unknown_name_or_source() -> None:
    with pytest.raises(ValueError, match=r"name must be one of \('mnist', .*got 'cifar'"):
        load_task("cifar")
    with pytest.raises(ValueError, match=r"source must be one of \('bundled', 'full'\), got 'web'"):
        load_task("mnist", source="web")
    with pytest.raises(TypeError, match=r"name must be one of .*got \['mnist'\]"):
        load_task(["mnist"])


def _idx_bytes(array: np.ndarray, tmp_path: Path) -> bytes:
    path = tmp_path / "tmp-idx"
    write_idx(path, array)
    return path.read_bytes()


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda b: b"\x00\x00\x0d\x03" + b[4:], "bad magic number"),
        (lambda b: b[:-5], "wrong length"),
        (lambda b: b + b"\x00", "wrong length"),
        (lambda b: b[:6], "truncated IDX header"),
        (lambda b: b[:2], "only 2 bytes"),
        # four dimensions of 2**16: the product 2**64 wraps to 0 in numpy's int64
        (lambda b: b"\x00\x00\x08\x04" + b"\x00\x01\x00\x00" * 4, "wrong length.*65536"),
    ],
)
def test_corrupt_idx_raises_value_error_naming_the_file(tmp_path: Path, mangle, message) -> None:
    good = _idx_bytes(np.zeros((3, 4, 4), np.uint8), tmp_path)
    path = tmp_path / "broken-idx3-ubyte"
    path.write_bytes(mangle(good))
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_not_gzip_and_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="x.gz"):
        read_idx(path)
    payload = gzip.compress(_idx_bytes(np.zeros((50, 28, 28), np.uint8), tmp_path))
    path.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(ValueError, match="x.gz"):
        read_idx(path)


def test_labels_images_count_mismatch_names_the_files(tmp_path: Path) -> None:
    _write_dataset(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(29, np.uint8))
    with pytest.raises(ValueError, match="do not match") as info:
        load_task("mnist", source="full", root=tmp_path)
    assert "train-labels-idx1-ubyte.gz" in str(info.value)


def test_idx_round_trip(tmp_path: Path) -> None:
    array = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    for name in ("a", "a.gz"):
        write_idx(tmp_path / name, array)
        np.testing.assert_array_equal(read_idx(tmp_path / name), array)
    with pytest.raises(ValueError, match="uint8"):
        write_idx(tmp_path / "b", array.astype(np.float32))


# --- the layout the learners take ------------------------------------------------------

@pytest.mark.parametrize("spec", ["mnist->fashion", "permuted:2", "split:task", "split:class"])
def test_tasks_hand_out_the_learner_layout(spec: str) -> None:
    for task in get_scenario(spec):
        for x, X in ((task.x_train, task.X_train), (task.x_test, task.X_test)):
            assert X.shape == (len(x), 1, 28, 28) and X.dtype == np.uint8
            np.testing.assert_array_equal(X, to_nchw(x, channels=1))
            assert np.shares_memory(X, x)  # a view: no copy of the images


@pytest.mark.parametrize("make", [lambda: MLP(seed=0), lambda: TestNet(seed=0),
                                  lambda: AlexNet(num_classes=10, width=0.25, seed=0)])
def test_learners_take_task_data_as_it_comes(make) -> None:
    task = load_task("fashion-mnist")
    model = make()
    X, y = task.X_train[:32], task.y_train[:32]
    before = model.predict_proba(task.X_test[:50])
    model.partial_fit(X, y)
    assert not np.array_equal(model.predict_proba(task.X_test[:50]), before)
    model.consolidate(X, y)
    assert 0.0 <= model.score(task.X_test[:50], task.y_test[:50]) <= 1.0
    # the stored (N, H, W) images are refused, not guessed at, and the message names the fix
    with pytest.raises(ValueError, match=r"4 dimensions \(N, C, H, W\).*X_train"):
        model.partial_fit(task.x_train[:32], y)


# --- to_nchw ---------------------------------------------------------------------------

@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_to_nchw_layouts(lib: str) -> None:
    gray = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    conv = torch.from_numpy if lib == "torch" else (lambda a: a)
    nhwc = np.repeat(gray[..., None], 3, axis=3)
    nchw = nhwc.transpose(0, 3, 1, 2)
    for x, channels in ((gray, 3), (gray[..., None], 3), (gray[:, None], 3), (nhwc, 3),
                        (nchw, 3), (gray, 1), (gray[:, None], 1)):
        out = to_nchw(conv(x), channels=channels)
        assert tuple(out.shape) == (2, channels, 28, 28)
        assert out.dtype == conv(x).dtype
        for c in range(channels):
            np.testing.assert_array_equal(np.asarray(out[:, c]), gray)
    assert isinstance(to_nchw(conv(gray)), type(conv(gray)))


def test_to_nchw_matches_the_seeds_hand_conversion() -> None:
    x = load_task("mnist").x_train[:5]
    seed = np.transpose(np.repeat(x[:, :, :, np.newaxis], 3, axis=3), (0, 3, 1, 2))
    np.testing.assert_array_equal(to_nchw(x), seed)


@pytest.mark.parametrize(
    "shape, message",
    [((2, 3, 5, 3), "ambiguous"), ((2, 28, 28, 2), "expected images"), ((28, 28), "dimensions"),
     ((1, 2, 3, 4, 5), "dimensions")],
)
def test_to_nchw_rejects_impossible_shapes(shape, message) -> None:
    with pytest.raises(ValueError, match=message):
        to_nchw(np.zeros(shape, np.uint8))


def test_to_nchw_will_not_drop_colour() -> None:
    with pytest.raises(ValueError, match="3-channel"):
        to_nchw(np.zeros((2, 3, 28, 28), np.uint8), channels=1)
    with pytest.raises(ValueError, match=r"channels must be one of \(1, 3\), got 2"):
        to_nchw(np.zeros((2, 28, 28), np.uint8), channels=2)


# --- permuted and split tasks ------------------------------------------------------------

def test_permute_task_is_a_fixed_bijection() -> None:
    task = load_task("mnist")
    a, b = permute_task(task, seed=1), permute_task(task, seed=1)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.name == "mnist-perm1"
    np.testing.assert_array_equal(a.y_train, task.y_train)
    # the same permutation on every image and on train and test alike
    flat, pflat = task.x_train.reshape(4000, -1), a.x_train.reshape(4000, -1)
    perm = np.random.default_rng(1).permutation(784)
    np.testing.assert_array_equal(pflat, flat[:, perm])
    test_flat = task.x_test.reshape(1000, -1)
    np.testing.assert_array_equal(a.x_test.reshape(1000, -1), test_flat[:, perm])
    np.testing.assert_array_equal(np.sort(pflat, axis=1), np.sort(flat, axis=1))
    assert not np.array_equal(permute_task(task, seed=2).x_train, a.x_train)


def test_split_task_remaps_or_keeps_labels() -> None:
    task = load_task("fashion-mnist")
    split = split_task(task, (7, 3))
    assert split.classes == ["Sneaker", "Dress"]
    assert sorted(np.unique(split.y_train)) == [0, 1]
    assert len(split.x_train) == 800 and len(split.x_test) == 200
    sneakers = task.x_train[task.y_train == 7]
    np.testing.assert_array_equal(split.x_train[split.y_train == 0], sneakers)
    kept = split_task(task, (7, 3), remap=False)
    assert sorted(np.unique(kept.y_train)) == [3, 7] and kept.classes == task.classes


def test_split_task_rejects_bad_classes() -> None:
    task = load_task("mnist")
    with pytest.raises(ValueError, match="outside"):
        split_task(task, (3, 12))
    with pytest.raises(ValueError, match="distinct"):
        split_task(task, (1, 1))
    with pytest.raises(TypeError, match=r"classes\[1\] must be an int"):
        split_task(task, (1, 2.5))
    with pytest.raises(ValueError, match="seed must be"):
        permute_task(task, -1)


def test_task_rejects_mismatched_lengths() -> None:
    x = np.zeros((3, 28, 28), np.uint8)
    with pytest.raises(ValueError, match="x_train has 3 images but y_train has 2"):
        Task("t", ["a"], x, np.zeros(2, np.int64), x, np.zeros(3, np.int64))
