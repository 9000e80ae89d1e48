"""Read the tensors of a ``torch.save`` file with numpy alone, without running its pickle's code.

Since PyTorch 1.6 ``torch.save`` writes a zip archive (members stored, never compressed) under
one top folder, whose name varies (``archive/``, or the file's stem):

- ``data.pkl``: the saved object as a pickle. Each tensor in it is a call of
  ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)``, and
  each storage a persistent id ``("storage", torch.HalfStorage, key, location, numel)``;
- ``data/<key>``: a storage's ``numel`` elements, raw, in the byte order ``byteorder`` names
  (``little`` when the member is absent, as in files from before it was written);
- ``version`` and other bookkeeping, not needed here.

The pickle is read by an unpickler that resolves only the few globals such a file of tensors
needs (``collections.OrderedDict``, the tensor rebuild functions and the ``torch.*Storage``
types, all mapped to stand-ins here) and refuses every other one, so a crafted file cannot run
code: the guarantee of ``torch.load(weights_only=True)``. Tensors come back as
:class:`TorchTensor` records; :meth:`TorchTensor.load` maps one from the file when asked, so
memory holds only the tensor being converted.

Refused with a :class:`ConversionError` naming the file and the reason: the legacy format of
torch < 1.6, TorchScript archives (``torch.jit.save``), compressed or missing members, storages
shorter than they claim, tensors reaching past their storage, and any other global.
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

from dattavani.errors import ConversionError

# What the file of torch < 1.6 starts with: pickle protocol 2, then LONG1 of torch's magic number.
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., file name length, extra field length
ByteOrder = Literal["<", ">"]
# What zipfile raises for a damaged archive besides BadZipFile (UnicodeDecodeError for a bad
# name is a ValueError; NotImplementedError for a version or method it does not know).
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    EOFError,
    NotImplementedError,
    ValueError,
    struct.error,
    zlib.error,
)


@dataclass(frozen=True, slots=True)
class StorageType:
    """A ``torch.<Name>Storage`` type: its element type as numpy reads it from the file."""

    name: str  # e.g. "HalfStorage"
    dtype: str  # the element's numpy type, little-endian; bfloat16 is read as its bits ("<u2")
    bfloat16: bool = False

    @property
    def is_float(self) -> bool:
        return self.bfloat16 or np.dtype(self.dtype).kind == "f"


STORAGE_TYPES = {
    t.name: t
    for t in (
        StorageType("HalfStorage", "<f2"),
        StorageType("FloatStorage", "<f4"),
        StorageType("DoubleStorage", "<f8"),
        StorageType("BFloat16Storage", "<u2", bfloat16=True),
        StorageType("ByteStorage", "u1"),
        StorageType("CharStorage", "i1"),
        StorageType("ShortStorage", "<i2"),
        StorageType("IntStorage", "<i4"),
        StorageType("LongStorage", "<i8"),
        StorageType("BoolStorage", "?"),
    )
}


@dataclass(frozen=True, slots=True)
class TorchStorage:
    """Where one storage's elements lie in the file."""

    path: Path
    key: str
    type: StorageType
    dtype: np.dtype[Any]  # type.dtype in the file's byte order
    numel: int
    offset: int  # absolute byte offset of the first element


@dataclass(frozen=True, slots=True)
class TorchTensor:
    """A tensor of the checkpoint: a view (offset, shape and strides in elements) of a storage."""

    storage: TorchStorage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def is_float(self) -> bool:
        return self.storage.type.is_float

    def load(self) -> npt.NDArray[Any]:
        """The tensor as a read-only view of the mapped file, or as a new float32 array when the
        storage is bfloat16 (numpy has no bfloat16; it is the top half of a float32)."""
        s = self.storage
        wide = np.dtype(np.float32) if s.type.bfloat16 else s.dtype
        if math.prod(self.shape) == 0:  # mmap cannot map zero bytes
            return np.zeros(self.shape, dtype=wide)
        span = 1 + sum((n - 1) * step for n, step in zip(self.shape, self.stride, strict=True))
        try:
            base = np.memmap(
                s.path,
                dtype=s.dtype,
                mode="r",
                offset=s.offset + self.offset * s.dtype.itemsize,
                shape=(span,),
            )
        except (OSError, ValueError) as exc:
            raise ConversionError(f"{s.path}: cannot map storage {s.key!r}: {exc}") from exc
        size = s.dtype.itemsize
        data = as_strided(
            base, self.shape, tuple(step * size for step in self.stride), writeable=False
        )
        if not s.type.bfloat16:
            return data
        bits = np.empty(self.shape, dtype=np.uint32)
        np.copyto(bits, data)
        bits <<= 16
        return bits.view(np.float32)


def read_torch_file(path: str | os.PathLike[str]) -> Any:
    """The object a ``torch.save`` zip file holds, with :class:`TorchTensor` for each tensor.

    No tensor data is read, and nothing the pickle names beyond tensors, storages and
    ``OrderedDict`` is resolved. Raises :class:`ConversionError` naming the file and the reason
    for anything else: not a zip, the legacy format, a damaged or truncated archive, a missing
    or compressed member, a storage shorter than it claims, a disallowed global.
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            try:
                archive = zipfile.ZipFile(f)
            except zipfile.BadZipFile:
                f.seek(0)
                raise ConversionError(_not_a_zip_reason(p, f.read(len(_LEGACY_MAGIC)))) from None
            except _ZIP_ERRORS as exc:
                raise ConversionError(f"{p}: a damaged zip archive: {exc}") from exc
            with archive:
                prefix = _archive_prefix(p, archive)
                byteorder = _byteorder(p, archive, prefix)
                pickled = _read_member(p, archive, prefix + "data.pkl")
                storages = _StorageFinder(p, f, size, archive, prefix, byteorder)
                return _unpickle(p, pickled, storages)
    except OSError as exc:
        raise ConversionError(f"{p}: cannot read: {exc.strerror or exc}") from exc


def _not_a_zip_reason(p: Path, head: bytes) -> str:
    if head.startswith(_LEGACY_MAGIC):
        return (
            f"{p}: a PyTorch file in the legacy format of torch < 1.6, which is not read here; "
            "save it again with a newer torch (torch.save(torch.load(src), dst)) first"
        )
    if head.startswith(b"PK\x03\x04"):
        return f"{p}: a damaged or truncated zip archive (no central directory at its end)"
    return f"{p}: not a PyTorch checkpoint (torch.save writes a zip archive; this is not one)"


def _archive_prefix(p: Path, archive: zipfile.ZipFile) -> str:
    """The top folder holding ``data.pkl`` (``archive/``, or the stem of the saved file)."""
    names = archive.namelist()
    found = [n[: -len("data.pkl")] for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise ConversionError(f"{p}: {what} data.pkl in the zip archive; not a torch.save file")
    prefix = found[0]
    if prefix + "constants.pkl" in names or any(n.startswith(prefix + "code/") for n in names):
        raise ConversionError(
            f"{p}: a TorchScript archive (torch.jit.save), not a torch.save checkpoint"
        )
    return prefix


def _stored_member(p: Path, archive: zipfile.ZipFile, name: str) -> zipfile.ZipInfo:
    """The member ``name``, which torch.save stores as it is (never compressed, so never a zip
    bomb, and mappable in place); ConversionError if it is missing, compressed or encrypted."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ConversionError(f"{p}: no member {name} in the archive") from None
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        raise ConversionError(
            f"{p}: member {name} is compressed or encrypted; torch.save stores its members "
            "as they are"
        )
    return info


def _read_member(p: Path, archive: zipfile.ZipFile, name: str) -> bytes:
    _stored_member(p, archive, name)
    try:
        return archive.read(name)
    except _ZIP_ERRORS as exc:
        raise ConversionError(f"{p}: cannot read {name} from the archive: {exc}") from exc


def _byteorder(p: Path, archive: zipfile.ZipFile, prefix: str) -> ByteOrder:
    if prefix + "byteorder" not in archive.namelist():
        return "<"
    raw = _read_member(p, archive, prefix + "byteorder")
    orders: dict[bytes, ByteOrder] = {b"little": "<", b"big": ">"}
    order = orders.get(raw.strip())
    if order is None:
        raise ConversionError(f"{p}: unknown byte order {raw[:20]!r} in {prefix}byteorder")
    return order


class _StorageFinder:
    """Checks each storage the pickle names against its ``data/<key>`` member and locates it."""

    def __init__(
        self,
        p: Path,
        f: BinaryIO,
        size: int,
        archive: zipfile.ZipFile,
        prefix: str,
        byteorder: ByteOrder,
    ) -> None:
        self.p, self.f, self.size, self.archive = p, f, size, archive
        self.prefix, self.byteorder = prefix, byteorder
        self.names = set(archive.namelist())
        self.found: dict[tuple[str, str, int], TorchStorage] = {}

    def storage(self, key: str, kind: StorageType, numel: int) -> TorchStorage:
        known = self.found.get((key, kind.name, numel))
        if known is not None:
            return known
        name = f"{self.prefix}data/{key}"
        if name not in self.names:
            raise ConversionError(f"{self.p}: storage {key!r} has no member {name}")
        info = _stored_member(self.p, self.archive, name)
        dtype = np.dtype(kind.dtype).newbyteorder(self.byteorder)
        needed = numel * dtype.itemsize
        if info.file_size < needed:
            raise ConversionError(
                f"{self.p}: storage {key!r} ({kind.name} of {numel}) needs {needed} bytes, "
                f"member {name} holds {info.file_size}"
            )
        header = b""
        if 0 <= info.header_offset < self.size:
            self.f.seek(info.header_offset)
            header = self.f.read(_LOCAL_HEADER.size)
        if len(header) < _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
            raise ConversionError(f"{self.p}: truncated or damaged zip member {name}")
        _, name_len, extra_len = _LOCAL_HEADER.unpack(header)
        offset = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
        if offset + needed > self.size:
            raise ConversionError(
                f"{self.p}: truncated: storage {key!r} needs bytes {offset}..{offset + needed}, "
                f"the file has {self.size}"
            )
        storage = TorchStorage(self.p, key, kind, dtype, numel, offset)
        self.found[(key, kind.name, numel)] = storage
        return storage


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals a ``torch.save`` file of tensors needs, to stand-ins."""

    def __init__(self, data: bytes, p: Path, storages: _StorageFinder) -> None:
        super().__init__(io.BytesIO(data))
        self.p, self.storages = p, storages
        self.allowed: dict[tuple[str, str], Any] = {
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2"): _Rebuild(p, "_rebuild_tensor_v2"),
            ("torch._utils", "_rebuild_parameter"): _Rebuild(p, "_rebuild_parameter"),
        }

    def find_class(self, module: str, name: str) -> Any:
        found = self.allowed.get((module, name))
        if found is not None:
            return found
        if module == "torch" and name in STORAGE_TYPES:
            return STORAGE_TYPES[name]
        what = "an unsupported storage type" if name.endswith("Storage") else "not allowed"
        raise ConversionError(
            f"{self.p}: data.pkl refers to {module}.{name}, {what}: only tensors, storages and "
            "OrderedDict are loaded (a pickle can run whatever code it names)"
        )

    def persistent_load(self, pid: Any) -> TorchStorage:
        match pid:
            case ("storage", StorageType() as kind, str(key), _, numel) if _is_count(numel):
                return self.storages.storage(key, kind, numel)
        raise ConversionError(f"{self.p}: data.pkl holds an unknown persistent id {pid!r:.80}")


@dataclass(frozen=True, slots=True)
class _Rebuild:
    """Stands in for ``torch._utils.<name>``: makes a :class:`TorchTensor`, checking its bounds."""

    p: Path
    name: str

    def __call__(self, *args: Any) -> TorchTensor:
        if self.name == "_rebuild_parameter":  # (tensor, requires_grad, hooks)
            if args and isinstance(args[0], TorchTensor):
                return args[0]
            raise ConversionError(f"{self.p}: a parameter in data.pkl wraps no tensor")
        # (storage, offset, size, stride, requires_grad, hooks[, metadata]), in elements
        storage, offset, shape, stride = (*args, None, None, None, None)[:4]
        if not (
            isinstance(storage, TorchStorage)
            and _is_count(offset)
            and isinstance(shape, tuple)
            and isinstance(stride, tuple)
            and len(shape) == len(stride)
            and all(_is_count(n) for n in shape + stride)
        ):
            given = ", ".join(
                f"storage {a.key!r}" if isinstance(a, TorchStorage) else f"{a!r:.40}"
                for a in args[:4]
            )
            raise ConversionError(
                f"{self.p}: a malformed tensor in data.pkl: ({given}); expected (storage, "
                "offset, size, stride) with as many strides as sizes"
            )
        if math.prod(shape) > 0:
            last = offset + sum((n - 1) * step for n, step in zip(shape, stride, strict=True))
            if last >= storage.numel:
                raise ConversionError(
                    f"{self.p}: a tensor of shape {shape} reaches element {last} of "
                    f"storage {storage.key!r}, which holds {storage.numel}"
                )
        return TorchTensor(storage, offset, shape, stride)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _unpickle(p: Path, data: bytes, storages: _StorageFinder) -> Any:
    try:
        return _RestrictedUnpickler(data, p, storages).load()
    except ConversionError:
        raise
    except Exception as exc:  # a corrupt pickle raises anything from EOFError to TypeError
        raise ConversionError(f"{p}: corrupt data.pkl: {type(exc).__name__}: {exc}") from exc
