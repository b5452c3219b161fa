"""Read and write IDX files, the format FashionMNIST ships in.

An IDX file is a 4-byte magic number ``0x0000TTNN`` (TT = element type, 0x08 for
unsigned bytes; NN = number of dimensions), then NN big-endian uint32 sizes, then
the elements in C order. FashionMNIST uses two kinds:

- images: ``0x00000803``, sizes (N, 28, 28);
- labels: ``0x00000801``, size (N,).

Files may be gzipped (``*-ubyte.gz``); we detect that by the gzip magic bytes, so a
gzipped file without the suffix (or a plain one with it) still reads.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from study.vocabulary.errors import UserError

GZIP_MAGIC = b"\x1f\x8b"
UNSIGNED_BYTE = 0x08
# The dimension counts FashionMNIST uses: 1 for labels, 3 for images.
KNOWN_NDIMS = {1: "labels, 1 dimension", 3: "images, 3 dimensions"}

_FIX = (
    "the file is damaged or is not a FashionMNIST IDX file: delete it and download it again "
    "(or reinstall the package with `apt-get install --reinstall dataset-fashion-mnist`)"
)


class IdxFormatError(UserError):
    """An IDX file is malformed; the message names the file, what was wrong and what to do."""


def _error(path: Path, what: str) -> IdxFormatError:
    return IdxFormatError(f"{path}: {what}; {_FIX}")


def read_bytes(path: Path) -> bytes:
    """The file's contents, decompressed when it starts with the gzip magic bytes."""
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        # A truncated download ends the gzip stream early: EOFError.
        raise _error(path, f"gzip data is corrupt or truncated ({type(e).__name__}: {e})") from None


def read_idx(path: str | Path, ndim: int | None = None) -> np.ndarray:
    """Read an unsigned-byte IDX file (plain or gzipped) into a uint8 array.

    `ndim` is the number of dimensions the caller expects (3 for images, 1 for
    labels); None accepts either. Raises `IdxFormatError` when the magic number,
    the element type, the dimension count or the payload length is wrong.
    Returns a writable array of shape given by the header, e.g. (N, 28, 28).
    """
    path = Path(path)
    data = read_bytes(path)
    allowed = [ndim] if ndim is not None else sorted(KNOWN_NDIMS)
    expected = " or ".join(f"0x{0x800 | n:08x} ({KNOWN_NDIMS.get(n, f'{n} dimensions')})" for n in allowed)

    if len(data) < 4:
        raise _error(path, f"file holds {len(data)} bytes, too short for the 4-byte magic number {expected}")
    zero, dtype, found_ndim = struct.unpack(">HBB", data[:4])
    magic = int.from_bytes(data[:4], "big")
    if zero != 0 or dtype != UNSIGNED_BYTE or found_ndim not in allowed:
        detail = []
        if zero != 0:
            detail.append("the first two bytes must be zero")
        if dtype != UNSIGNED_BYTE:
            detail.append(f"element type byte is 0x{dtype:02x}, expected 0x08 (unsigned byte)")
        if found_ndim not in allowed:
            detail.append(f"dimension count is {found_ndim}, expected {' or '.join(map(str, allowed))}")
        raise _error(path, f"magic number is 0x{magic:08x}, expected {expected} ({'; '.join(detail)})")

    header = 4 + 4 * found_ndim
    if len(data) < header:
        raise _error(path, f"file holds {len(data)} bytes, too short for its {header}-byte header")
    dims = struct.unpack(f">{found_ndim}I", data[4:header])
    want = int(np.prod(dims, dtype=np.int64))
    have = len(data) - header
    if have != want:
        shape = "x".join(map(str, dims))
        problem = "truncated" if have < want else f"too long ({have - want} extra bytes)"
        raise _error(path, f"file is {problem}: header says shape {shape} = {want} bytes of data, found {have}")
    # frombuffer over `bytes` is read-only; copy so callers (and torch.from_numpy) may write.
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write a uint8 array of 1 or 3 dimensions as an IDX file; gzip when `path` ends in .gz.

    Used by tests and `study.data.fake_data` to make small synthetic datasets.
    """
    path = Path(path)
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"write_idx needs a uint8 array, got dtype {array.dtype}; convert with .astype(np.uint8)")
    if array.ndim not in KNOWN_NDIMS:
        raise ValueError(f"write_idx needs 1 (labels) or 3 (images) dimensions, got shape {array.shape}")
    payload = struct.pack(f">HBB{array.ndim}I", 0, UNSIGNED_BYTE, array.ndim, *array.shape)
    payload += np.ascontiguousarray(array).tobytes()
    if path.name.endswith(".gz"):
        # mtime=0 and no file name in the header make the bytes reproducible;
        # level 1 because tests care about speed.
        with open(path, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=1, mtime=0) as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
    return path
