"""Read a CTranslate2 (faster-whisper) Whisper model directory and map it to whisper.cpp tensors.

``model.bin`` layout (binary versions 4 to 6, all little-endian, no padding anywhere):

* ``uint32`` binary version, then a string spec name (``"WhisperSpec"``) and ``uint32`` revision,
  where a string is a ``uint16`` length that counts a trailing NUL, then the bytes and the NUL;
* ``uint32`` variable count, then per variable: name, ``uint8`` rank, ``rank`` x ``uint32`` dims,
  ``uint8`` type id (float32, int8, int16, int32, float16, bfloat16), ``uint32`` byte count, data;
* ``uint32`` alias count, then (alias, target) name pairs. The converter aliases any two equal
  tensors; in Whisper that is the output projection, tied to the token embedding.

We index the file once (names, shapes, offsets) and read each tensor only when the writer asks for
it, so memory stays near the largest tensor rather than the model size.

CTranslate2 differs from openai-whisper's layout in ways the mapping undoes: self-attention
Q/K/V are one fused ``linear_0`` (rows stacked q, k, v), cross-attention K/V are one fused
``linear_1``; the bias-free key projections got zero biases when fused; int8/int16 models store
weights quantised with a per-row (int8) or per-tensor (int16) ``<name>_scale`` such that
``float = int / scale``.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, cast

import numpy as np
import numpy.typing as npt

from dattavani.convert.ggml_writer import WhisperHParams
from dattavani.errors import ConversionError

# Versions 4-6 share the layout above. Before 4 dtypes were guessed from item sizes, and
# Whisper support (ctranslate2 3.0) came later, so no Whisper model.bin is that old.
MIN_BINARY_VERSION = 4
MAX_BINARY_VERSION = 6
MAX_WHISPER_REVISION = 3

# Type ids in the order of ctranslate2's DataType enum; bfloat16 is read as raw uint16 bits.
_TYPE_IDS: dict[int, np.dtype[np.generic]] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: np.dtype("<u2"),
}
_BFLOAT16 = 5

# How many leading tokens go into the GGML vocabulary: the 50256 byte-level BPE merges plus one.
# whisper.cpp's own files hold exactly these; it synthesises the special tokens itself. For .en
# models id 50256 is "<|endoftext|>", for multilingual ones an empty placeholder rank.
GGML_VOCAB_SIZE = 50257
MULTILINGUAL_MIN_VOCAB = 51865  # whisper.cpp's is_multilingual() threshold


@dataclass(frozen=True)
class Ct2Variable:
    """One variable's entry in the ``model.bin`` index."""

    name: str
    shape: tuple[int, ...]
    type_id: int
    offset: int
    nbytes: int


class Ct2ModelBin:
    """Lazily read variables from a CTranslate2 ``model.bin``.

    Use as a context manager; the index is parsed on construction, and :meth:`read_raw` /
    :meth:`read_float` seek to one variable and read only its bytes.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self._file: BinaryIO = self.path.open("rb")
        except OSError as exc:
            raise ConversionError(f"{self.path}: cannot open: {exc.strerror or exc}") from exc
        try:
            self._size = os.fstat(self._file.fileno()).st_size
            self._parse_index()
        except BaseException:
            self._file.close()
            raise

    def __enter__(self) -> Ct2ModelBin:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    # -- index ------------------------------------------------------------------------------

    def error(self, reason: str) -> ConversionError:
        """A ConversionError naming this file."""
        return ConversionError(f"{self.path}: {reason}")

    def _take(self, n: int) -> bytes:
        data = self._file.read(n)
        if len(data) != n:
            raise self.error(
                f"truncated: needed {n} bytes at offset {self._file.tell() - len(data)}, "
                f"file has {self._size}"
            )
        return data

    def _u(self, fmt: str) -> int:
        value: int = struct.unpack("<" + fmt, self._take(struct.calcsize(fmt)))[0]
        return value

    def _string(self) -> str:
        raw = self._take(self._u("H"))
        if not raw or raw[-1] != 0:
            raise self.error("not a CTranslate2 model (malformed string in the index)")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.error("not a CTranslate2 model (undecodable name)") from exc

    def _parse_index(self) -> None:
        if self._size < 8:
            raise self.error(f"not a CTranslate2 model ({self._size} bytes)")
        self.binary_version = self._u("I")
        if not MIN_BINARY_VERSION <= self.binary_version <= MAX_BINARY_VERSION:
            raise self.error(
                f"not a supported CTranslate2 model (binary version {self.binary_version}, "
                f"expected {MIN_BINARY_VERSION}..{MAX_BINARY_VERSION})"
            )
        self.spec_name = self._string()
        self.spec_revision = self._u("I")
        if self.spec_name != "WhisperSpec":
            raise self.error(f"a CTranslate2 {self.spec_name!r} model, not a Whisper model")
        if self.spec_revision > MAX_WHISPER_REVISION:
            raise self.error(
                f"WhisperSpec revision {self.spec_revision} is newer than the supported "
                f"{MAX_WHISPER_REVISION}"
            )
        self.variables: dict[str, Ct2Variable] = {}
        for _ in range(self._u("I")):
            var = self._read_entry()
            self.variables[var.name] = var
        self.aliases: dict[str, str] = {}
        for _ in range(self._u("I")):
            alias = self._string()
            self.aliases[alias] = self._string()
        if self._file.tell() != self._size:
            raise self.error(f"{self._size - self._file.tell()} unexpected trailing bytes")

    def _read_entry(self) -> Ct2Variable:
        name = self._string()
        rank = self._u("B")
        shape = struct.unpack(f"<{rank}I", self._take(4 * rank))
        type_id = self._u("B")
        nbytes = self._u("I")
        dtype = _TYPE_IDS.get(type_id)
        if dtype is None:
            raise self.error(f"variable {name!r} has unknown type id {type_id}")
        if nbytes != int(np.prod(shape)) * dtype.itemsize:
            raise self.error(f"variable {name!r}: {nbytes} bytes do not fit shape {shape}")
        offset = self._file.tell()
        if offset + nbytes > self._size:
            raise self.error(
                f"truncated: variable {name!r} needs bytes {offset}..{offset + nbytes}, "
                f"file has {self._size}"
            )
        self._file.seek(nbytes, os.SEEK_CUR)
        return Ct2Variable(name, tuple(shape), type_id, offset, nbytes)

    # -- access -----------------------------------------------------------------------------

    def resolve(self, name: str) -> Ct2Variable | None:
        """The stored variable ``name`` refers to, following an alias; None when absent."""
        return self.variables.get(self.aliases.get(name, name))

    def __contains__(self, name: str) -> bool:
        return self.resolve(name) is not None

    def require(self, name: str) -> Ct2Variable:
        var = self.resolve(name)
        if var is None:
            raise self.error(f"missing variable {name!r}")
        return var

    def read_raw(self, name: str) -> npt.NDArray[np.generic]:
        """The stored array as is (int8 stays int8, bfloat16 comes back as uint16 bits)."""
        var = self.require(name)
        dtype = _TYPE_IDS[var.type_id]
        self._file.seek(var.offset)
        data = np.fromfile(self._file, dtype=dtype, count=var.nbytes // dtype.itemsize)
        return data.reshape(var.shape)

    def scalar(self, name: str) -> int | float:
        data = self.read_raw(name)
        if data.size != 1:
            raise self.error(f"variable {name!r} is not a scalar (shape {data.shape})")
        value: int | float = data.reshape(()).item()
        return value

    def read_float(self, name: str) -> npt.NDArray[np.floating]:
        """The variable as float16/float32, dequantising int8/int16 and widening bfloat16."""
        var = self.require(name)
        data = self.read_raw(name)
        if var.type_id in (0, 4):
            return cast("npt.NDArray[np.floating]", data)
        if var.type_id == _BFLOAT16:
            # bfloat16 is the top half of a float32.
            return (data.astype(np.uint32) << 16).view(np.float32)
        if var.type_id in (1, 2):
            # The scale of an aliased weight is the scale of its target (ctranslate2 aliases both).
            scale_name = f"{self.aliases.get(name, name)}_scale"
            if scale_name not in self:
                raise self.error(f"quantised variable {name!r} has no {scale_name!r}")
            scale = self.read_float(scale_name).astype(np.float32)
            if scale.size not in (1, data.shape[0]):
                raise self.error(f"{scale_name!r} of shape {scale.shape} does not fit {data.shape}")
            scale = scale.reshape((-1,) + (1,) * (data.ndim - 1)) if scale.size > 1 else scale
            return data.astype(np.float32) / scale
        raise self.error(f"variable {name!r} has non-float type id {var.type_id}")


# -- hparams and tensor mapping -------------------------------------------------------------------

_LAYER_RE = re.compile(r"^(encoder|decoder)/layer_(\d+)/")


def _count_layers(model: Ct2ModelBin, side: str) -> int:
    indices = {
        int(m.group(2))
        for m in map(_LAYER_RE.match, model.variables)
        if m is not None and m.group(1) == side
    }
    if not indices or indices != set(range(len(indices))):
        raise model.error(f"{side} layers are missing or not numbered 0..n-1: {sorted(indices)}")
    return len(indices)


def read_hparams(model: Ct2ModelBin) -> WhisperHParams:
    """Derive whisper.cpp's hparams from the tensor shapes and the stored head counts."""
    audio_ctx, audio_state = model.require("encoder/position_encodings/encodings").shape
    text_ctx, text_state = model.require("decoder/position_encodings/encodings").shape
    n_vocab, emb_state = model.require("decoder/embeddings/weight").shape
    conv1 = model.require("encoder/conv1/weight").shape
    if len(conv1) != 3 or conv1[0] != audio_state or emb_state != text_state:
        raise model.error("tensor shapes are inconsistent with a Whisper model")
    return WhisperHParams(
        n_vocab=n_vocab,
        n_audio_ctx=audio_ctx,
        n_audio_state=audio_state,
        n_audio_head=int(model.scalar("encoder/num_heads")),
        n_audio_layer=_count_layers(model, "encoder"),
        n_text_ctx=text_ctx,
        n_text_state=text_state,
        n_text_head=int(model.scalar("decoder/num_heads")),
        n_text_layer=_count_layers(model, "decoder"),
        n_mels=conv1[1],
    )


Tensor = tuple[str, npt.NDArray[np.floating]]


def _split_rows(
    model: Ct2ModelBin, ct2_name: str, parts: int, dest: list[str | None]
) -> Iterator[Tensor]:
    """Split a fused projection along its output rows; a None destination drops that part."""
    data = model.read_float(ct2_name)
    if data.shape[0] % parts:
        raise model.error(f"{ct2_name!r} of shape {data.shape} does not split into {parts}")
    for chunk, name in zip(np.split(data, parts, axis=0), dest, strict=True):
        if name is not None:
            yield name, chunk


def _linear(model: Ct2ModelBin, src: str, dst: str) -> Iterator[Tensor]:
    yield f"{dst}.weight", model.read_float(f"{src}/weight")
    yield f"{dst}.bias", model.read_float(f"{src}/bias")


def _layer_norm(model: Ct2ModelBin, src: str, dst: str) -> Iterator[Tensor]:
    yield f"{dst}.weight", model.read_float(f"{src}/gamma")
    yield f"{dst}.bias", model.read_float(f"{src}/beta")


def _self_attention(model: Ct2ModelBin, src: str, dst: str) -> Iterator[Tensor]:
    yield from _layer_norm(model, f"{src}/layer_norm", f"{dst}.attn_ln")
    qkv = f"{src}/linear_0"
    yield from _split_rows(
        model,
        f"{qkv}/weight",
        3,
        [f"{dst}.attn.{p}.weight" for p in ("query", "key", "value")],
    )
    # whisper.cpp has no key bias. Dropping it is exact whatever its value: q.(k+b) adds the same
    # q.b to every key's score, which softmax cancels.
    yield from _split_rows(
        model,
        f"{qkv}/bias",
        3,
        [f"{dst}.attn.query.bias", None, f"{dst}.attn.value.bias"],
    )
    yield from _linear(model, f"{src}/linear_1", f"{dst}.attn.out")


def _cross_attention(model: Ct2ModelBin, src: str, dst: str) -> Iterator[Tensor]:
    yield from _layer_norm(model, f"{src}/layer_norm", f"{dst}.cross_attn_ln")
    yield from _linear(model, f"{src}/linear_0", f"{dst}.cross_attn.query")
    kv = f"{src}/linear_1"
    yield from _split_rows(
        model,
        f"{kv}/weight",
        2,
        [f"{dst}.cross_attn.key.weight", f"{dst}.cross_attn.value.weight"],
    )
    yield from _split_rows(model, f"{kv}/bias", 2, [None, f"{dst}.cross_attn.value.bias"])
    yield from _linear(model, f"{src}/linear_2", f"{dst}.cross_attn.out")


def _mlp(model: Ct2ModelBin, src: str, dst: str) -> Iterator[Tensor]:
    yield from _layer_norm(model, f"{src}/layer_norm", f"{dst}.mlp_ln")
    yield from _linear(model, f"{src}/linear_0", f"{dst}.mlp.0")
    yield from _linear(model, f"{src}/linear_1", f"{dst}.mlp.2")


def iter_ggml_tensors(model: Ct2ModelBin, hp: WhisperHParams) -> Iterator[Tensor]:
    """Yield ``(whisper.cpp name, array)`` for every tensor, reading each on demand.

    Rows are ``(out, in)`` in both worlds, so no transposes are needed; the rename and the
    Q/K/V split are the whole mapping (plus the conv bias reshape to the ``(n, 1)`` column
    whisper.cpp broadcasts over time).
    """
    _check_projection_is_tied(model)
    yield (
        "encoder.positional_embedding",
        model.read_float("encoder/position_encodings/encodings"),
    )
    for i in (1, 2):
        yield f"encoder.conv{i}.weight", model.read_float(f"encoder/conv{i}/weight")
        yield (
            f"encoder.conv{i}.bias",
            model.read_float(f"encoder/conv{i}/bias").reshape(-1, 1),
        )
    for i in range(hp.n_audio_layer):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        yield from _self_attention(model, f"{src}/self_attention", dst)
        yield from _mlp(model, f"{src}/ffn", dst)
    yield from _layer_norm(model, "encoder/layer_norm", "encoder.ln_post")

    yield (
        "decoder.positional_embedding",
        model.read_float("decoder/position_encodings/encodings"),
    )
    yield (
        "decoder.token_embedding.weight",
        model.read_float("decoder/embeddings/weight"),
    )
    for i in range(hp.n_text_layer):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        yield from _self_attention(model, f"{src}/self_attention", dst)
        yield from _cross_attention(model, f"{src}/attention", dst)
        yield from _mlp(model, f"{src}/ffn", dst)
    yield from _layer_norm(model, "decoder/layer_norm", "decoder.ln")


def _check_projection_is_tied(model: Ct2ModelBin) -> None:
    """whisper.cpp computes logits with the token embedding; refuse a model that does not.

    ctranslate2 stores the tied projection as an alias; a separately stored one (never seen in
    practice, so reading both copies at once is acceptable) must be equal, and bias-free.
    """
    emb = model.require("decoder/embeddings/weight")
    proj = model.resolve("decoder/projection/weight")
    if proj is not None and proj.name != emb.name:
        if proj.shape != emb.shape:
            raise model.error("decoder projection differs in shape from the token embedding")
        a = model.read_float(emb.name)
        b = model.read_float(proj.name)
        if not np.array_equal(a, b):
            raise model.error(
                "decoder output projection is not tied to the token embedding; "
                "whisper.cpp cannot represent that"
            )
    if "decoder/projection/bias" in model and np.any(model.read_float("decoder/projection/bias")):
        raise model.error("decoder output projection has a bias; whisper.cpp cannot represent it")


# -- vocabulary ---------------------------------------------------------------------------------


def _byte_decoder() -> dict[str, int]:
    """Map GPT-2 byte-level BPE characters back to the bytes they stand for.

    GPT-2 gives every byte a printable character: bytes that already are printable (and not
    space) map to themselves, the other 68 to U+0100 onward in byte order.
    """
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table = {chr(b): b for b in printable}
    others = sorted(set(range(256)) - set(printable))
    table.update({chr(0x100 + i): b for i, b in enumerate(others)})
    return table


def token_bytes(token: str, decoder: dict[str, int] | None = None) -> bytes:
    """The raw bytes a byte-level BPE token string stands for."""
    table = decoder or _byte_decoder()
    return bytes(table[ch] for ch in token)


def read_vocabulary(src_dir: Path) -> list[str]:
    """The model's token strings by id, from whichever vocabulary file the directory has.

    ctranslate2 >= 4 writes ``vocabulary.json``, older versions ``vocabulary.txt`` (one token a
    line); faster-whisper ships ``tokenizer.json`` too, used only when neither exists.
    """
    json_path = src_dir / "vocabulary.json"
    txt_path = src_dir / "vocabulary.txt"
    tok_path = src_dir / "tokenizer.json"
    try:
        if json_path.is_file():
            tokens = json.loads(json_path.read_text(encoding="utf-8"))
            if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                raise ConversionError(f"{json_path}: expected a JSON list of token strings")
            return tokens
        if txt_path.is_file():
            # Split on "\n" only: str.splitlines() would also split on U+0085 and friends.
            text = txt_path.read_text(encoding="utf-8")
            return text[:-1].split("\n") if text.endswith("\n") else text.split("\n")
        if tok_path.is_file():
            return _tokens_from_tokenizer_json(tok_path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConversionError(f"{src_dir}: cannot read the vocabulary: {exc}") from exc
    raise ConversionError(
        f"{src_dir}: no vocabulary.json, vocabulary.txt or tokenizer.json next to model.bin"
    )


def _tokens_from_tokenizer_json(path: Path) -> list[str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    try:
        by_id: dict[int, str] = {int(i): t for t, i in data["model"]["vocab"].items()}
        by_id.update({int(t["id"]): t["content"] for t in data.get("added_tokens", [])})
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConversionError(f"{path}: not a byte-level BPE tokenizer.json ({exc})") from exc
    size = max(by_id) + 1 if by_id else 0
    # Ids without an entry (the multilingual placeholder rank) become empty tokens.
    return [by_id.get(i, "") for i in range(size)]


def ggml_vocabulary(tokens: list[str], n_vocab: int, where: Path) -> list[bytes]:
    """The token bytes whisper.cpp's GGML files carry: ids ``0..50256`` as raw bytes."""
    if len(tokens) < GGML_VOCAB_SIZE:
        raise ConversionError(
            f"{where}: vocabulary has {len(tokens)} tokens, a Whisper model has {n_vocab}"
        )
    if len(tokens) > n_vocab:
        raise ConversionError(
            f"{where}: vocabulary has {len(tokens)} tokens but the embedding has {n_vocab} rows"
        )
    # whisper.cpp hard-codes the special token ids from n_vocab alone; make sure this vocabulary
    # agrees, or every transcript would be decoded with shifted special tokens.
    eot = GGML_VOCAB_SIZE - 1 + (n_vocab >= MULTILINGUAL_MIN_VOCAB)
    if len(tokens) > eot and tokens[eot] != "<|endoftext|>":
        raise ConversionError(
            f"{where}: token {eot} is {tokens[eot]!r}, whisper.cpp expects '<|endoftext|>' there"
        )
    decoder = _byte_decoder()
    try:
        return [token_bytes(t, decoder) for t in tokens[:GGML_VOCAB_SIZE]]
    except KeyError as exc:
        raise ConversionError(
            f"{where}: token {exc.args[0]!r} is not byte-level BPE text; not a Whisper vocabulary"
        ) from exc
