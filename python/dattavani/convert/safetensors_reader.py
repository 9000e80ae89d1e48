"""Read tensors from ``.safetensors`` files with numpy alone, one memory-mapped tensor at a time.

The format (https://huggingface.co/docs/safetensors) is a little-endian ``uint64`` header length
``N``, ``N`` bytes of JSON mapping each tensor name to ``{"dtype", "shape", "data_offsets"}`` (plus
an optional ``"__metadata__"`` object), then the raw little-endian data; offsets count from the end
of the header. Because the data is raw, a tensor can be mapped straight from the file: memory then
holds only the pages being converted, and the mapping goes away with the array.

Only float tensors are read (F32, F16, and BF16 widened to float32), which is what Whisper
checkpoints hold; the other dtypes are known so their sizes can be checked.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from dattavani.errors import ConversionError

# Bytes per element of every dtype the format defines; a header naming anything else is corrupt.
_ITEM_SIZES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "F64": 8,
    "I64": 8,
    "U64": 8,
}
# How the float dtypes are mapped; BF16 comes in as its raw bits and is widened afterwards.
_FLOAT_DTYPES: dict[str, np.dtype[np.generic]] = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
}
# The reference implementation refuses headers above 100 MB; a real one is well under 1 MB.
_MAX_HEADER_BYTES = 100_000_000


@dataclass(frozen=True)
class SafetensorsTensor:
    """Where one tensor's data lies in a safetensors file."""

    path: Path
    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int  # absolute byte offset of the data in the file
    nbytes: int

    def load(self) -> npt.NDArray[np.floating]:
        """The tensor as a read-only memory map (F32, F16) or a new float32 array (BF16)."""
        dtype = _FLOAT_DTYPES.get(self.dtype)
        if dtype is None:
            raise ConversionError(
                f"{self.path}: tensor {self.name!r} has dtype {self.dtype}; "
                "expected a float tensor (F32, F16 or BF16)"
            )
        if self.nbytes == 0:  # mmap cannot map zero bytes
            return np.zeros(self.shape, dtype=np.float32)
        try:
            data: npt.NDArray[np.generic] = np.memmap(
                self.path, dtype=dtype, mode="r", offset=self.offset, shape=self.shape
            )
        except (OSError, ValueError) as exc:
            raise ConversionError(f"{self.path}: cannot map tensor {self.name!r}: {exc}") from exc
        if self.dtype != "BF16":
            return data  # type: ignore[return-value]
        # bfloat16 is the top half of a float32: widen in place in one float32-sized buffer.
        bits = np.empty(self.shape, dtype=np.uint32)
        np.copyto(bits, data)
        bits <<= 16
        return bits.view(np.float32)


def read_safetensors_index(path: str | os.PathLike[str]) -> dict[str, SafetensorsTensor]:
    """Parse a safetensors file's header: every tensor's dtype, shape and data location.

    No tensor data is read. Raises :class:`ConversionError` naming the file and the problem for a
    file that is not safetensors, has a corrupt header, or is shorter than its header says.
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            prefix = f.read(8)
            if len(prefix) < 8:
                raise ConversionError(f"{p}: not a safetensors file ({size} bytes)")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > min(_MAX_HEADER_BYTES, size - 8):
                raise ConversionError(
                    f"{p}: not a safetensors file or truncated (header length {header_len}, "
                    f"file size {size})"
                )
            raw = f.read(header_len)
    except OSError as exc:
        raise ConversionError(f"{p}: cannot read: {exc.strerror or exc}") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConversionError(f"{p}: corrupt safetensors header (not JSON: {exc})") from exc
    if not isinstance(header, dict):
        raise ConversionError(f"{p}: corrupt safetensors header (not a JSON object)")
    data_start = 8 + header_len
    return {
        name: _tensor_entry(p, name, entry, data_start, size)
        for name, entry in header.items()
        if name != "__metadata__"
    }


def _tensor_entry(
    p: Path, name: str, entry: object, data_start: int, size: int
) -> SafetensorsTensor:
    def corrupt(reason: str) -> ConversionError:
        return ConversionError(f"{p}: corrupt safetensors header: tensor {name!r} {reason}")

    if not isinstance(entry, dict):
        raise corrupt("is not described by a JSON object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in _ITEM_SIZES:
        raise corrupt(f"has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise corrupt(f"has invalid shape {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_count(o) for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise corrupt(f"has invalid data_offsets {offsets!r}")
    begin, end = offsets
    nbytes = math.prod(shape) * _ITEM_SIZES[dtype]
    if end - begin != nbytes:
        raise corrupt(f"spans {end - begin} bytes, but {dtype} {shape} needs {nbytes}")
    if data_start + end > size:
        raise ConversionError(
            f"{p}: truncated: tensor {name!r} needs bytes "
            f"{data_start + begin}..{data_start + end}, file has {size}"
        )
    return SafetensorsTensor(p, name, dtype, tuple(shape), data_start + begin, nbytes)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
