"""The IDX file format of MNIST and Fashion-MNIST: read (raw or gzipped) and write.

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype> <ndim>``, then ``ndim``
big-endian uint32 sizes, then the data. The MNIST files use dtype ``0x08`` (uint8):
images are ``(N, 28, 28)`` and labels ``(N,)``.

torchvision's ``read_sn3_pascalvincent_tensor`` reads the same format, but it reports a
corrupt file with a bare ``AssertionError`` and does not open ``.gz`` files, so ewclab
keeps this small numpy reader, which names the file in every error.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
from pathlib import Path

import numpy as np

_UINT8 = 0x08


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read a uint8 IDX file (``.gz`` or raw) into a numpy array.

    Parameters
    ----------
    path : str or path-like
        The file. A name ending in ``.gz`` is decompressed.

    Returns
    -------
    numpy.ndarray
        uint8 array with the shape stored in the header.

    Raises
    ------
    ValueError
        If the file is truncated, too long, not gzip when named ``.gz``, or its magic
        number is not that of a uint8 IDX file. The message names the file.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise ValueError(f"{path}: cannot read IDX file ({err})") from err
    if len(data) < 4:
        raise ValueError(f"{path}: expected an IDX file, got only {len(data)} bytes")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != _UINT8 or not 1 <= ndim <= 4:
        raise ValueError(
            f"{path}: bad magic number 0x{data[:4].hex()}; expected 0x000008NN "
            "(uint8 IDX with NN dimensions, as in MNIST)"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(data)} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + math.prod(shape)  # exact: np.prod wraps around in int64
    if len(data) != expected:
        raise ValueError(
            f"{path}: wrong length for an IDX array of shape {shape}: "
            f"expected {expected} bytes, got {len(data)} (truncated or corrupt file)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file; ``.gz`` names are gzipped byte-reproducibly.

    Parameters
    ----------
    path : str or path-like
        Destination. With a ``.gz`` suffix the file is gzipped with ``mtime=0`` and no
        file name in the header, so the same array always gives the same bytes.
    array : numpy.ndarray
        uint8 array with 1 to 4 dimensions.
    """
    array = np.asarray(array)
    if array.dtype != np.uint8 or not 1 <= array.ndim <= 4:
        raise ValueError(
            f"expected a uint8 array with 1-4 dimensions, got {array.dtype} "
            f"with shape {array.shape}"
        )
    header = struct.pack(">HBB", 0, _UINT8, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array).tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        with open(path, "wb") as raw, gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9
        ) as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
