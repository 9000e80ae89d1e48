"""Write (and read back) whisper.cpp's legacy GGML model file.

The layout is what ``whisper_model_load`` in whisper.cpp's ``src/whisper.cpp`` reads, all
little-endian:

* ``uint32`` magic ``0x67676d6c`` ("ggml");
* eleven ``int32`` hparams (:class:`WhisperHParams` order, then ``ftype``);
* the mel filterbank: ``int32 n_mel``, ``int32 n_fft``, ``n_mel * n_fft`` float32;
* the vocabulary: ``int32`` count, then per token an ``int32`` length and the raw token bytes;
* the tensors until end of file, each ``int32 n_dims, int32 name_len, int32 ggml_type``,
  ``n_dims`` int32 dims innermost first (numpy's shape reversed), the name, the data.

The writer is source-agnostic: a converter hands it hparams, filters, token bytes and an iterator
of ``(whisper.cpp tensor name, numpy array)`` pairs. Tensors are validated against the shapes
whisper.cpp will expect and streamed one at a time into a temporary file next to the output, which
is renamed into place only after the last byte is written, so a failure never leaves a partial
model where a loader could find it.
"""

from __future__ import annotations

import os
import secrets
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import numpy.typing as npt

from dattavani.errors import ConversionError

GGML_MAGIC = 0x67676D6C

# ggml_type values used by the legacy whisper format (ggml.h); the file's ``ftype`` hparam uses the
# matching ggml_ftype values (0 = all f32, 1 = mostly f16), which happen to be the same numbers.
GGML_TYPE_F32 = 0
GGML_TYPE_F16 = 1
_GGML_TYPE_DTYPES: dict[int, np.dtype[np.floating]] = {
    GGML_TYPE_F32: np.dtype("<f4"),
    GGML_TYPE_F16: np.dtype("<f2"),
}

# The quantized types dattavani.convert.quantize writes: ggml_type -> (elements, bytes) per block
# of a row (ggml-common.h). read_ggml indexes such files; their data is not decoded here.
GGML_QUANTIZED_BLOCKS: dict[int, tuple[int, int]] = {
    2: (32, 18),  # q4_0
    6: (32, 22),  # q5_0
    7: (32, 24),  # q5_1
    8: (32, 34),  # q8_0
}

OutDType = Literal["f16", "f32"]
_FTYPES: dict[str, int] = {"f32": GGML_TYPE_F32, "f16": GGML_TYPE_F16}

# 2-D tensors the whisper.cpp loader nevertheless allocates as F32 in an f16 file (it rejects a
# size mismatch): they are added to activations, not multiplied, so f16 would buy nothing.
_F32_MATRICES = frozenset(
    {
        "encoder.conv1.bias",
        "encoder.conv2.bias",
        "encoder.positional_embedding",
        "decoder.positional_embedding",
    }
)

# Elements converted and written per slice: big enough for full-speed I/O, small enough that a
# dtype change never duplicates a whole token embedding (up to 66M elements in large models).
_CHUNK_ELEMENTS = 1 << 20

_MAX_NAME_BYTES = 1024  # sanity bound for the reader; real names are under 50 bytes


@dataclass(frozen=True)
class WhisperHParams:
    """The model dimensions in the order the GGML header stores them."""

    n_vocab: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int
    n_mels: int

    def as_tuple(self) -> tuple[int, ...]:
        """The ten values in header order."""
        return tuple(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class GgmlTensorInfo:
    """Where one tensor lives in a GGML file."""

    name: str
    ggml_type: int
    shape: tuple[int, ...]  # numpy (row-major) order, i.e. the file's dims reversed
    offset: int  # byte offset of the data

    @property
    def dtype(self) -> np.dtype[np.floating]:
        return _GGML_TYPE_DTYPES[self.ggml_type]

    @property
    def nbytes(self) -> int:
        """Bytes of data in the file (quantized rows are whole blocks)."""
        count = int(np.prod(self.shape))
        if self.ggml_type in GGML_QUANTIZED_BLOCKS:
            elements, size = GGML_QUANTIZED_BLOCKS[self.ggml_type]
            return count // elements * size
        return count * self.dtype.itemsize


@dataclass(frozen=True)
class GgmlModelInfo:
    """A parsed GGML whisper file: header, filters, vocabulary and the tensor index."""

    path: Path
    hparams: WhisperHParams
    ftype: int
    mel_filters: npt.NDArray[np.float32]
    vocab: list[bytes]
    tensors: dict[str, GgmlTensorInfo]

    def load(self, name: str) -> npt.NDArray[np.floating]:
        """Read one tensor's data (a fresh array, the file is not kept open); f32/f16 only."""
        info = self.tensors[name]
        if info.ggml_type not in _GGML_TYPE_DTYPES:
            raise ConversionError(f"{self.path}: tensor {name!r} is quantized; cannot load it")
        count = int(np.prod(info.shape))
        with self.path.open("rb") as f:
            f.seek(info.offset)
            data = np.fromfile(f, dtype=info.dtype, count=count)
        return data.reshape(info.shape)


def expected_tensor_shapes(hp: WhisperHParams) -> dict[str, tuple[int, ...]]:
    """Every tensor whisper.cpp's loader creates for ``hp``, with its numpy shape.

    Mirrors the ``create_tensor`` calls in ``whisper_model_load``: the loader fails unless the
    file holds exactly these names with exactly these element counts. Note the keys have no bias
    (whisper's key projections have none) and the conv biases are ``(n, 1)`` columns.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    a, t = hp.n_audio_state, hp.n_text_state

    shapes["encoder.positional_embedding"] = (hp.n_audio_ctx, a)
    shapes["encoder.conv1.weight"] = (a, hp.n_mels, 3)
    shapes["encoder.conv1.bias"] = (a, 1)
    shapes["encoder.conv2.weight"] = (a, a, 3)
    shapes["encoder.conv2.bias"] = (a, 1)
    shapes["encoder.ln_post.weight"] = (a,)
    shapes["encoder.ln_post.bias"] = (a,)
    for i in range(hp.n_audio_layer):
        shapes.update(_block_shapes(f"encoder.blocks.{i}", "attn", a))

    shapes["decoder.positional_embedding"] = (hp.n_text_ctx, t)
    shapes["decoder.token_embedding.weight"] = (hp.n_vocab, t)
    shapes["decoder.ln.weight"] = (t,)
    shapes["decoder.ln.bias"] = (t,)
    for i in range(hp.n_text_layer):
        shapes.update(_block_shapes(f"decoder.blocks.{i}", "attn", t))
        shapes.update(_attention_shapes(f"decoder.blocks.{i}", "cross_attn", t))
    return shapes


def _attention_shapes(prefix: str, attn: str, d: int) -> dict[str, tuple[int, ...]]:
    return {
        f"{prefix}.{attn}_ln.weight": (d,),
        f"{prefix}.{attn}_ln.bias": (d,),
        f"{prefix}.{attn}.query.weight": (d, d),
        f"{prefix}.{attn}.query.bias": (d,),
        f"{prefix}.{attn}.key.weight": (d, d),
        f"{prefix}.{attn}.value.weight": (d, d),
        f"{prefix}.{attn}.value.bias": (d,),
        f"{prefix}.{attn}.out.weight": (d, d),
        f"{prefix}.{attn}.out.bias": (d,),
    }


def _block_shapes(prefix: str, attn: str, d: int) -> dict[str, tuple[int, ...]]:
    shapes = _attention_shapes(prefix, attn, d)
    shapes.update(
        {
            f"{prefix}.mlp_ln.weight": (d,),
            f"{prefix}.mlp_ln.bias": (d,),
            f"{prefix}.mlp.0.weight": (4 * d, d),
            f"{prefix}.mlp.0.bias": (4 * d,),
            f"{prefix}.mlp.2.weight": (d, 4 * d),
            f"{prefix}.mlp.2.bias": (d,),
        }
    )
    return shapes


def storage_type(name: str, ndim: int, ftype: int) -> int:
    """The ggml_type whisper.cpp expects for tensor ``name`` of rank ``ndim`` in an ``ftype`` file.

    In an f16 file the matrices (projections, token embedding, conv kernels) are f16; vectors
    (biases, layer norms), the conv bias columns and the positional embeddings stay f32, because
    the loader allocates them as F32.
    """
    if ftype == GGML_TYPE_F32 or ndim < 2 or name in _F32_MATRICES:
        return GGML_TYPE_F32
    return GGML_TYPE_F16


def write_ggml(
    out_path: str | os.PathLike[str],
    hparams: WhisperHParams,
    mel_filters: npt.NDArray[np.floating],
    vocab: Sequence[bytes],
    tensors: Iterable[tuple[str, npt.NDArray[np.floating]]],
    *,
    dtype: OutDType = "f16",
) -> Path:
    """Write a whisper.cpp GGML model to ``out_path`` atomically and return its path.

    ``tensors`` is consumed lazily, one array at a time, and each is converted and written in
    slices, so peak memory stays near the largest source tensor. Each must be one of
    :func:`expected_tensor_shapes` with that shape; all of them must come exactly once. On any
    error the temporary file is removed and a :class:`ConversionError` naming ``out_path`` is
    raised.
    """
    out = Path(out_path)
    if dtype not in _FTYPES:
        raise ConversionError(f"{out}: unsupported dtype {dtype!r}; expected 'f16' or 'f32'")
    ftype = _FTYPES[dtype]
    if not out.parent.is_dir():
        raise ConversionError(f"{out}: output directory {out.parent} does not exist")
    filters = np.ascontiguousarray(mel_filters, dtype="<f4")
    if filters.ndim != 2 or filters.shape[0] != hparams.n_mels:
        raise ConversionError(
            f"{out}: mel filters of shape {filters.shape} do not match n_mels={hparams.n_mels}"
        )
    if hparams.n_audio_state != hparams.n_text_state:
        # whisper.cpp asserts this; a file violating it would load and then misbehave.
        raise ConversionError(
            f"{out}: n_audio_state {hparams.n_audio_state} != n_text_state {hparams.n_text_state}"
        )

    # Same directory, so the final os.replace is an atomic rename; not mkstemp, whose 0600 mode
    # would carry over to the model file, while "xb" honours the umask and never clobbers.
    tmp = out.parent / f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.part"
    try:
        f = tmp.open("xb")
    except OSError as exc:
        raise ConversionError(f"{out}: cannot create a file in {out.parent}: {exc}") from exc
    try:
        with f:
            _write_header(f, hparams, ftype, filters, vocab)
            _write_tensors(f, out, hparams, ftype, tensors)
            f.flush()
            # The rename must not be able to land before the data does (power loss, NFS).
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ConversionError(f"{out}: cannot write the model: {exc}") from exc
        raise
    return out


def _write_header(
    f: BinaryIO,
    hp: WhisperHParams,
    ftype: int,
    filters: npt.NDArray[np.float32],
    vocab: Sequence[bytes],
) -> None:
    f.write(struct.pack("<I", GGML_MAGIC))
    f.write(struct.pack("<11i", *hp.as_tuple(), ftype))
    f.write(struct.pack("<2i", *filters.shape))
    f.write(filters.tobytes())
    f.write(struct.pack("<i", len(vocab)))
    for token in vocab:
        f.write(struct.pack("<i", len(token)))
        f.write(token)


def _write_tensors(
    f: BinaryIO,
    out: Path,
    hp: WhisperHParams,
    ftype: int,
    tensors: Iterable[tuple[str, npt.NDArray[np.floating]]],
) -> None:
    expected = expected_tensor_shapes(hp)
    written: set[str] = set()
    for name, array in tensors:
        want = expected.get(name)
        if want is None:
            raise ConversionError(f"{out}: whisper.cpp has no tensor named {name!r}")
        if name in written:
            raise ConversionError(f"{out}: tensor {name!r} produced twice")
        if tuple(array.shape) != want:
            raise ConversionError(
                f"{out}: tensor {name!r} has shape {tuple(array.shape)}, whisper.cpp expects {want}"
            )
        ggml_type = storage_type(name, array.ndim, ftype)
        encoded = name.encode("utf-8")
        f.write(struct.pack("<3i", array.ndim, len(encoded), ggml_type))
        f.write(struct.pack(f"<{array.ndim}i", *reversed(array.shape)))
        f.write(encoded)
        _write_data(f, out, name, array, _GGML_TYPE_DTYPES[ggml_type])
        written.add(name)
    missing = [n for n in expected if n not in written]
    if missing:
        raise ConversionError(
            f"{out}: {len(missing)} tensor(s) whisper.cpp needs were not produced, "
            f"e.g. {missing[:3]}"
        )


def _write_data(
    f: BinaryIO,
    out: Path,
    name: str,
    array: npt.NDArray[np.floating],
    dtype: np.dtype[np.floating],
) -> None:
    """Write ``array`` as ``dtype`` in slices, so a dtype change never copies a whole tensor."""
    flat = np.ascontiguousarray(array).reshape(-1)  # a view for the contiguous arrays we get
    for start in range(0, flat.size, _CHUNK_ELEMENTS):
        chunk = flat[start : start + _CHUNK_ELEMENTS].astype(dtype, copy=False)
        if not np.isfinite(chunk).all():
            # Catches corrupt sources, and f32 values too large for f16 (which become inf).
            raise ConversionError(f"{out}: tensor {name!r} has non-finite values")
        f.write(chunk.data)


def read_ggml(path: str | os.PathLike[str]) -> GgmlModelInfo:
    """Parse a whisper GGML file's header, filters, vocabulary and tensor index.

    Tensor data is not read (use :meth:`GgmlModelInfo.load`). Raises :class:`ConversionError`
    for anything whisper.cpp's loader would reject at the byte level.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        with p.open("rb") as f:
            return _read_ggml(f, p, size)
    except OSError as exc:
        raise ConversionError(f"{p}: cannot read: {exc}") from exc
    except (struct.error, EOFError) as exc:
        raise ConversionError(f"{p}: truncated GGML file") from exc


def _read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise EOFError
    return data


def read_ggml_header(f: BinaryIO, p: Path) -> tuple[WhisperHParams, int]:
    """The hyper-parameters and the ``ftype`` a GGML whisper file starts with (``f`` at its
    start): the one reader of the header on the Python side.

    Raises :class:`ConversionError` for another magic, EOFError for a short file.
    """
    (magic,) = struct.unpack("<I", _read_exact(f, 4))
    if magic != GGML_MAGIC:
        raise ConversionError(f"{p}: not a GGML file (magic {magic:#x})")
    values = struct.unpack("<11i", _read_exact(f, 44))
    return WhisperHParams(*values[:10]), values[10]


def _read_ggml(f: BinaryIO, p: Path, size: int) -> GgmlModelInfo:
    hparams, ftype = read_ggml_header(f, p)
    n_mel, n_fft = struct.unpack("<2i", _read_exact(f, 8))
    filters = np.frombuffer(_read_exact(f, 4 * n_mel * n_fft), dtype="<f4")
    filters = filters.reshape(n_mel, n_fft).copy()
    (n_tokens,) = struct.unpack("<i", _read_exact(f, 4))
    vocab = []
    for _ in range(n_tokens):
        (length,) = struct.unpack("<I", _read_exact(f, 4))
        vocab.append(_read_exact(f, length))
    tensors: dict[str, GgmlTensorInfo] = {}
    while f.tell() < size:
        n_dims, name_len, ggml_type = struct.unpack("<3i", _read_exact(f, 12))
        if not 1 <= n_dims <= 4 or not 0 < name_len <= _MAX_NAME_BYTES:
            raise ConversionError(f"{p}: corrupt tensor header at byte {f.tell() - 12}")
        if ggml_type not in _GGML_TYPE_DTYPES and ggml_type not in GGML_QUANTIZED_BLOCKS:
            raise ConversionError(f"{p}: unsupported ggml type {ggml_type}")
        dims = struct.unpack(f"<{n_dims}i", _read_exact(f, 4 * n_dims))
        name = _read_exact(f, name_len).decode("utf-8")
        shape = tuple(reversed(dims))
        info = GgmlTensorInfo(name, ggml_type, shape, f.tell())
        block = GGML_QUANTIZED_BLOCKS.get(ggml_type)
        if block is not None and shape[-1] % block[0]:
            raise ConversionError(f"{p}: tensor {name!r} rows are not whole quantized blocks")
        nbytes = info.nbytes
        if info.offset + nbytes > size:
            raise EOFError
        f.seek(nbytes, os.SEEK_CUR)
        tensors[name] = info
    return GgmlModelInfo(p, hparams, ftype, filters, vocab, tensors)


def iter_tensors(info: GgmlModelInfo) -> Iterator[tuple[str, npt.NDArray[np.floating]]]:
    """Yield every tensor of a parsed file as float32, in file order (handy for comparisons)."""
    for name in info.tensors:
        yield name, info.load(name).astype(np.float32)
