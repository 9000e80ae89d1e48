"""Write ``torch.save`` files without torch, for the converter's tests.

``torch.save`` (zip format, torch >= 1.6) writes a zip archive, members stored, under one folder:
``data.pkl``, a protocol-2 pickle in which each tensor is a call of
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)`` and each
storage a persistent id ``("storage", torch.HalfStorage, key, "cpu", numel)``; ``data/<key>``,
each storage's raw elements; ``byteorder`` and ``version``. Python's pickler names only globals it
can import, so :func:`pickle_bytes` writes the few opcodes such a file uses by hand, which also
lets a test name any global (``os.system``).
"""

from __future__ import annotations

import struct
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

# numpy type of an array -> torch's storage type (bfloat16 arrays are wrapped in BFloat16).
STORAGE_TYPES = {
    np.dtype(np.float16): "HalfStorage",
    np.dtype(np.float32): "FloatStorage",
    np.dtype(np.float64): "DoubleStorage",
    np.dtype(np.int64): "LongStorage",
}


@dataclass(frozen=True)
class Global:
    """A global the pickle names: ``module.name``."""

    module: str
    name: str


@dataclass(frozen=True)
class Call:
    """``func(*args)`` when unpickled (pickle's REDUCE)."""

    func: Global
    args: tuple[object, ...]


@dataclass(frozen=True)
class Storage:
    """A storage: its persistent id in the pickle; its bytes go to ``data/<key>``."""

    type: str  # e.g. "HalfStorage"
    key: str
    numel: int


@dataclass(frozen=True)
class Tensor:
    """A view of a storage, offset and strides in elements, as torch pickles a tensor."""

    storage: Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


@dataclass(frozen=True)
class BFloat16:
    """A bfloat16 tensor, given as its bits (numpy has no bfloat16)."""

    bits: npt.NDArray[np.uint16]


def pickle_bytes(obj: object) -> bytes:
    """``obj`` pickled with protocol 2 as torch.save pickles it; see :func:`_emit` for the types."""
    out = bytearray(b"\x80\x02")  # PROTO 2
    _emit(out, obj)
    return bytes(out + b".")  # STOP


def _emit(out: bytearray, obj: object) -> None:
    if obj is None:
        out += b"N"
    elif isinstance(obj, bool):
        out += b"\x88" if obj else b"\x89"  # NEWTRUE, NEWFALSE
    elif isinstance(obj, int):
        out += b"J" + struct.pack("<i", obj)  # BININT
    elif isinstance(obj, str):
        data = obj.encode("utf-8")
        out += b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE
    elif isinstance(obj, tuple):
        out += b"("  # MARK
        for item in obj:
            _emit(out, item)
        out += b"t"  # TUPLE
    elif isinstance(obj, OrderedDict):  # OrderedDict(), its items, then its attributes (BUILD)
        _emit(out, Call(Global("collections", "OrderedDict"), ()))
        _emit_items(out, obj)
        if vars(obj):
            _emit(out, vars(obj))
            out += b"b"
    elif isinstance(obj, dict):
        out += b"}"  # EMPTY_DICT
        _emit_items(out, obj)
    elif isinstance(obj, Global):
        out += b"c" + f"{obj.module}\n{obj.name}\n".encode()  # GLOBAL
    elif isinstance(obj, Call):
        _emit(out, obj.func)
        _emit(out, obj.args)
        out += b"R"  # REDUCE
    elif isinstance(obj, Storage):
        _emit(out, ("storage", Global("torch", obj.type), obj.key, "cpu", obj.numel))
        out += b"Q"  # BINPERSID
    elif isinstance(obj, Tensor):
        args = (obj.storage, obj.offset, obj.shape, obj.stride, False, OrderedDict())
        _emit(out, Call(Global("torch._utils", "_rebuild_tensor_v2"), args))
    else:
        raise TypeError(f"cannot pickle {type(obj).__name__} here")


def _emit_items(out: bytearray, items: dict[object, object]) -> None:
    if items:
        out += b"("  # MARK
        for key, value in items.items():
            _emit(out, key)
            _emit(out, value)
        out += b"u"  # SETITEMS


def contiguous_stride(shape: tuple[int, ...]) -> tuple[int, ...]:
    stride = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        stride[i] = stride[i + 1] * shape[i + 1]
    return tuple(stride)


def write_archive(
    path: Path,
    data_pkl: bytes,
    storages: dict[str, bytes],
    *,
    folder: str = "archive",
    byteorder: str | None = "little",
    compression: int = zipfile.ZIP_STORED,
) -> None:
    """The zip archive of torch.save around a pickle and the storages' bytes by key."""
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        archive.writestr(f"{folder}/data.pkl", data_pkl)
        if byteorder is not None:
            archive.writestr(f"{folder}/byteorder", byteorder)
        for key, data in storages.items():
            archive.writestr(f"{folder}/data/{key}", data)
        archive.writestr(f"{folder}/version", "3\n")


def save(obj: object, path: Path, *, byteorder: str = "little") -> None:
    """``torch.save(obj, path)``, with numpy arrays (and :class:`BFloat16`) for tensors.

    Each array gets a storage of its own, in the given byte order.
    """
    storages: dict[str, bytes] = {}
    order = "<" if byteorder == "little" else ">"

    def store(type_name: str, array: npt.NDArray[np.generic]) -> Tensor:
        key = str(len(storages))
        storages[key] = np.ascontiguousarray(array, array.dtype.newbyteorder(order)).tobytes()
        shape = tuple(array.shape)
        return Tensor(Storage(type_name, key, array.size), 0, shape, contiguous_stride(shape))

    def with_tensors(value: object) -> object:
        if isinstance(value, np.ndarray):
            return store(STORAGE_TYPES[value.dtype], value)
        if isinstance(value, BFloat16):
            return store("BFloat16Storage", value.bits)
        if isinstance(value, OrderedDict):
            ordered = OrderedDict((k, with_tensors(v)) for k, v in value.items())
            vars(ordered).update(vars(value))  # state_dict()'s _metadata
            return ordered
        if isinstance(value, dict):
            return {k: with_tensors(v) for k, v in value.items()}
        return value

    write_archive(path, pickle_bytes(with_tensors(obj)), storages, byteorder=byteorder)
