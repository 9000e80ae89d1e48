"""Audio input: a file, bytes, a stream or an array, to mono float32 at the model's sample rate.

Files are decoded block by block (libsndfile through ``soundfile`` first, FFmpeg through PyAV for
what libsndfile cannot read: M4A/AAC, MP4, MKV, WebM, ..., and for MP3), each block downmixed (or
one channel picked) and resampled by soxr's streaming resampler, so a long file is never held in
memory at its original rate. Nothing is written to the process's stderr while decoding: MP3 is
left to FFmpeg because libsndfile decodes it through libmpg123, which prints its warnings there.

>>> from dattavani import load_audio
>>> audio = load_audio("interview.m4a", channel=1)   # doctest: +SKIP
>>> audio.dtype, audio.ndim                          # doctest: +SKIP
(dtype('float32'), 1)

Damaged files: a file that ends before the length its header declares (a cut-off download, a
recorder that died) or that holds damaged packets is decoded up to the damage, with a logged
warning naming the file and both durations; players behave the same way, and the speech before the
cut is usually what the user wants. A file from which nothing at all decodes because of damage is an
``AudioError``; a well-formed file that holds no samples (a WAV of zero frames), like an empty
array, decodes to an empty array, as faster-whisper's and openai-whisper's decoders give.
"""

from __future__ import annotations

import io
import logging
import math
import os
import stat
import struct
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, TypeAlias

import numpy as np
import numpy.typing as npt

from dattavani.errors import AudioError, OptionsError

logger = logging.getLogger(__name__)

AudioArray: TypeAlias = npt.NDArray[np.float32]
FileSource: TypeAlias = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO
AudioSource: TypeAlias = FileSource | npt.NDArray[Any]

#: The sample rate whisper models take; every input is resampled to it (the one definition).
SAMPLE_RATE = 16000

#: Sample rates a real recording can have (telephony to the fastest studio converters); a header
#: outside this range is damaged.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000

# Frames decoded per step: about 0.34 s at 48 kHz. Memory stays flat whatever the file's length,
# and a file damaged part-way loses at most one step before the damage.
_BLOCK_FRAMES = 1 << 14

# Sizes that streaming writers put in a WAV header when they cannot seek back to fill it in
# (ffmpeg to a pipe, arecord): they mean "unknown", not "this much data".
_WAV_SIZE_PLACEHOLDERS = frozenset({0, 0x7FFF_FFFF, 0xFFFF_FFFF})


def load_audio(
    source: AudioSource, sample_rate: int = 16000, channel: int | None = None
) -> AudioArray:
    """Decode ``source`` to a 1-D, C-contiguous float32 array at ``sample_rate``.

    ``source`` is a path, bytes, a binary file-like object (read from its start; a stream that
    cannot seek is read into memory first) or a numpy array. An array is taken to be at
    ``sample_rate`` already, shaped ``(frames,)`` or ``(frames, channels)``: integer PCM is scaled
    to [-1, 1), float64 converted, and a 1-D float32 array is returned as it is, without a copy.

    Channels are averaged, or ``channel=N`` (0-based) keeps only channel N: the two sides of a
    stereo interview are often two speakers.

    An empty array, or a file that holds no samples, gives an empty array (transcribing it gives
    no segments).

    Raises ``AudioError`` (naming the source and the reason) for anything that is not decodable
    audio, and ``OptionsError`` for a bad ``sample_rate`` or ``channel``.

    >>> audio = load_audio("jfk.flac")   # doctest: +SKIP
    >>> len(audio) / 16000               # doctest: +SKIP
    11.0
    """
    _check_request(sample_rate, channel)
    (audio,) = _decode_chunks(source, sample_rate, channel, chunk_frames=None)
    return audio


def iter_audio(
    source: AudioSource,
    sample_rate: int = 16000,
    channel: int | None = None,
    chunk_seconds: float = 30.0,
) -> Iterator[AudioArray]:
    """Decode ``source`` as :func:`load_audio` does, yielding consecutive chunks of it.

    Every chunk but the last holds exactly ``round(chunk_seconds * sample_rate)`` samples. Files are
    read, downmixed and resampled a block at a time, so memory use does not depend on the length
    of the file. Errors found before any audio are raised at the first ``next()``; a file that
    turns out damaged part-way ends early with a logged warning (see the module docs).

    >>> for chunk in iter_audio("meeting.mp4", chunk_seconds=60):   # doctest: +SKIP
    ...     feed(chunk)
    """
    _check_request(sample_rate, channel)
    if not (
        isinstance(chunk_seconds, (int, float))
        and math.isfinite(chunk_seconds)
        and chunk_seconds > 0
    ):
        raise OptionsError(f"chunk_seconds={chunk_seconds!r}: expected a positive number")
    chunk_frames = max(1, round(chunk_seconds * sample_rate))
    return _decode_chunks(source, sample_rate, channel, chunk_frames)


def audio_duration(source: AudioSource, sample_rate: int = 16000) -> float:
    """Duration of ``source`` in seconds, from the file's header when it states one.

    Formats whose header does not state a length are decoded (streaming) to count the samples.
    ``sample_rate`` is used only for arrays, which are taken to be at that rate.

    >>> audio_duration("jfk.flac")   # doctest: +SKIP
    11.0
    """
    _check_request(sample_rate, None)
    name = _describe(source)
    if isinstance(source, np.ndarray):
        return len(_array_to_mono(source, None, name)) / sample_rate
    with _open_decoder(_as_input(source, name), name) as decoder:
        if decoder.declared_frames:
            return decoder.declared_frames / decoder.sample_rate
        frames = sum(len(block) for block in decoder.blocks)
    if frames == 0 and decoder.problems:
        raise _no_audio_error(decoder, name)
    return frames / decoder.sample_rate


def _decode_chunks(
    source: AudioSource, sample_rate: int, channel: int | None, chunk_frames: int | None
) -> Iterator[AudioArray]:
    """What load_audio (one chunk: ``chunk_frames=None``) and iter_audio both return."""
    name = _describe(source)
    if isinstance(source, np.ndarray):
        audio = _array_to_mono(source, channel, name)
        if chunk_frames is None:
            yield audio
            return
        for start in range(0, len(audio), chunk_frames):
            yield audio[start : start + chunk_frames]
        return
    with _open_decoder(_as_input(source, name), name) as decoder:
        yield from _rechunk(_decode_mono(decoder, sample_rate, channel, name), chunk_frames)


# ---------------------------------------------------------------------------------------------
# Arguments and sources


def _check_request(sample_rate: int, channel: int | None) -> None:
    if (
        isinstance(sample_rate, bool)
        or not isinstance(sample_rate, int)
        or not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE
    ):
        raise OptionsError(
            f"sample_rate={sample_rate!r}: expected an int from {MIN_SAMPLE_RATE} to "
            f"{MAX_SAMPLE_RATE} Hz"
        )
    if channel is not None and (
        isinstance(channel, bool) or not isinstance(channel, int) or channel < 0
    ):
        raise OptionsError(f"channel={channel!r}: expected None (downmix) or an int >= 0")


def _describe(source: object) -> str:
    """How error messages and warnings name a source."""
    if isinstance(source, (str, os.PathLike)):
        return os.fsdecode(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{memoryview(source).nbytes} bytes of audio data>"
    if isinstance(source, np.ndarray):
        return f"<{source.dtype} array of shape {source.shape}>"
    name = getattr(source, "name", None)
    if isinstance(name, str):
        return name
    return f"<{type(source).__name__} object>"


@dataclass
class _Input:
    """A source made ready for the decoders: a checked path, or a seekable binary stream."""

    target: str | BinaryIO
    size: int

    def rewind(self) -> None:
        if not isinstance(self.target, str):
            self.target.seek(0)

    def head(self, count: int) -> bytes:
        if isinstance(self.target, str):
            with open(self.target, "rb") as handle:
                return handle.read(count)
        self.target.seek(0)
        data = self.target.read(count)
        self.target.seek(0)
        return data


def _as_input(source: FileSource, name: str) -> _Input:
    if isinstance(source, (str, os.PathLike)):
        return _path_input(os.fsdecode(source), name)
    if isinstance(source, io.TextIOBase):
        raise AudioError(f"{name}: is a text stream; open the file in binary mode ('rb')")
    if not isinstance(source, (bytes, bytearray, memoryview)) and not callable(
        getattr(source, "read", None)
    ):
        raise AudioError(
            f"{name}: not an audio source; expected a path, bytes, a binary file object or a "
            "numpy array"
        )
    try:
        stream = _seekable_stream(source, name)
        stream.seek(0, os.SEEK_END)
        size = stream.tell()
        stream.seek(0)
    except (OSError, ValueError) as exc:  # a closed file, a stream that fails to seek or read
        raise AudioError(f"{name}: cannot be read: {exc}") from exc
    if size == 0:
        raise AudioError(f"{name}: is empty (0 bytes)")
    return _Input(stream, size)


def _seekable_stream(source: bytes | bytearray | memoryview | BinaryIO, name: str) -> BinaryIO:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(source)
    seekable = getattr(source, "seekable", None)
    if callable(seekable) and seekable():
        return source
    data = source.read()
    if not isinstance(data, (bytes, bytearray)):
        raise AudioError(f"{name}: read() returned {type(data).__name__}, not bytes")
    return io.BytesIO(data)


def _path_input(path: str, name: str) -> _Input:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise AudioError(f"{name}: no such file") from None
    except OSError as exc:
        raise AudioError(f"{name}: cannot be read: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise AudioError(f"{name}: is a directory, not an audio file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise AudioError(f"{name}: cannot be read: {exc.strerror}") from None
    if stat.S_ISREG(info.st_mode) and info.st_size == 0:
        raise AudioError(f"{name}: is empty (0 bytes)")
    return _Input(path, info.st_size)


# ---------------------------------------------------------------------------------------------
# Arrays


def _array_to_mono(array: npt.NDArray[Any], channel: int | None, name: str) -> AudioArray:
    if array.ndim not in (1, 2):
        raise AudioError(f"{name}: expected a (frames,) or (frames, channels) array")
    # An array of no frames is empty audio, whatever its number of channels.
    if array.ndim == 2 and array.shape[1] > array.shape[0] > 0:
        raise AudioError(
            f"{name}: more channels than frames; arrays are (frames, channels), so pass array.T "
            "for a (channels, frames) array"
        )
    kind = array.dtype.kind
    if kind not in "iuf":
        raise AudioError(f"{name}: {array.dtype} samples are not audio; use integer or float PCM")
    mono = _mono(array, channel, name)
    if kind in "iu":
        # Integer PCM spans [-2**(bits-1), 2**(bits-1)); unsigned PCM is offset by 2**(bits-1).
        full_scale = float(2 ** (8 * array.dtype.itemsize - 1))
        audio = mono.astype(np.float32)
        if kind == "u":
            audio -= full_scale
        audio *= 1.0 / full_scale
    else:
        audio = np.ascontiguousarray(mono, dtype=np.float32)
    _check_finite(audio, name)
    return audio


def _mono(block: npt.NDArray[Any], channel: int | None, name: str) -> npt.NDArray[Any]:
    """One channel of a (frames,) or (frames, channels) block, or the mean of its channels."""
    channels = 1 if block.ndim == 1 else block.shape[1]
    _check_channel(channel, channels, name)
    if block.ndim == 1:
        return block
    if channel is not None:
        return block[:, channel]
    if channels == 1:
        return block[:, 0]
    mean_dtype = np.float64 if block.dtype == np.float64 else np.float32
    mean: npt.NDArray[Any] = block.mean(axis=1, dtype=mean_dtype)
    return mean


def _check_channel(channel: int | None, channels: int, name: str) -> None:
    if channel is not None and channel >= channels:
        raise AudioError(
            f"{name}: channel={channel} is out of range; the audio has {channels} channel(s), "
            f"numbered 0 to {channels - 1}"
        )


def _check_finite(audio: AudioArray, name: str, offset_seconds: float | None = None) -> None:
    # min and max propagate NaN and expose infinities without a full-size temporary array.
    if audio.size and not (math.isfinite(float(audio.min())) and math.isfinite(float(audio.max()))):
        where = "" if offset_seconds is None else f" (in the block from {offset_seconds:.2f} s)"
        raise AudioError(f"{name}: contains NaN or infinite samples{where}")


# ---------------------------------------------------------------------------------------------
# Decoding


class _DecodeError(Exception):
    """A decoding library refused the data; the message is its reason."""


@dataclass
class _Decoder:
    """An open file: its native format and an iterator of float32 (frames, channels) blocks.

    ``problems`` collects damage found while decoding (skipped packets, an early stop).
    """

    sample_rate: int
    channels: int
    declared_frames: int | None
    blocks: Iterator[npt.NDArray[np.float32]]
    problems: list[str] = field(default_factory=list)


@contextmanager
def _open_decoder(source: _Input, name: str) -> Iterator[_Decoder]:
    """libsndfile if it can read the data, else FFmpeg; FFmpeg alone for MPEG audio; AudioError if
    none can."""
    reasons = []
    openers = [("libsndfile", _soundfile_decoder), ("FFmpeg", _pyav_decoder)]
    if _is_mpeg_audio(source.head(4)):
        openers = openers[1:]
    with ExitStack() as stack:
        decoder: _Decoder | None = None
        for library, opener in openers:
            source.rewind()
            try:
                decoder = stack.enter_context(opener(source, name))
                break
            except _DecodeError as exc:
                reasons.append(f"{library}: {exc}")
        if decoder is None:
            diagnosis = _diagnose_wav(source) or "not a readable audio or video file"
            raise AudioError(f"{name}: {diagnosis} ({'; '.join(reasons)})")
        if not MIN_SAMPLE_RATE <= decoder.sample_rate <= MAX_SAMPLE_RATE:
            raise AudioError(
                f"{name}: its header declares a sample rate of {decoder.sample_rate} Hz, outside "
                f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz: the header is damaged"
            )
        if decoder.channels < 1:
            raise AudioError(f"{name}: its header declares {decoder.channels} channels")
        yield decoder


def _is_mpeg_audio(head: bytes) -> bool:
    """Whether data starts as libsndfile recognises MPEG audio (MP3, MP2): an ID3 tag, or the sync
    bits of a layer I-III frame header (not ADTS AAC, whose layer bits are 0).

    libsndfile decodes it through libmpg123, which prints a warning to the process's stderr for
    each frame it finds odd (jfk.mp3: four lines of ``part2_3_length (...) too large``), out of
    reach of any logging setting. FFmpeg decodes the same samples (tests/test_audio.py compares
    with the ``ffmpeg`` command's) and writes nothing (PyAV leaves FFmpeg's log off).
    """
    if head.startswith(b"ID3"):
        return True
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06 != 0


def _decode_mono(
    decoder: _Decoder, sample_rate: int, channel: int | None, name: str
) -> Iterator[AudioArray]:
    """The decoder's blocks downmixed (or channel-picked) and resampled to ``sample_rate``."""
    import soxr

    _check_channel(channel, decoder.channels, name)
    resampler = (
        soxr.ResampleStream(decoder.sample_rate, sample_rate, 1, dtype="float32", quality="HQ")
        if decoder.sample_rate != sample_rate
        else None
    )
    decoded = 0
    for block in decoder.blocks:
        mono = np.ascontiguousarray(_mono(block, channel, name), dtype=np.float32)
        _check_finite(mono, name, decoded / decoder.sample_rate)
        decoded += len(mono)
        if resampler is None:
            yield mono
            continue
        # Huge but finite samples (float files near 3e38) overflow in the resampler's filter.
        resampled = resampler.resample_chunk(mono)
        _check_finite(resampled, name, decoded / decoder.sample_rate)
        yield resampled
    if decoded == 0:
        if decoder.problems:
            raise _no_audio_error(decoder, name)
        return  # a file that holds no samples
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
        _check_finite(tail, name, decoded / decoder.sample_rate)
        yield tail
    _report_damage(decoder, decoded, name)


def _no_audio_error(decoder: _Decoder, name: str) -> AudioError:
    """A file from which damage let nothing decode (one that holds no samples is no error)."""
    return AudioError(f"{name}: no audio decodes ({'; '.join(decoder.problems)})")


def _report_damage(decoder: _Decoder, decoded: int, name: str) -> None:
    problems = list(decoder.problems)
    declared = decoder.declared_frames
    # Codec padding and header rounding make small differences normal: allow 1% or 0.1 s.
    if declared and decoded + max(declared // 100, decoder.sample_rate // 10) < declared:
        problems.append(f"its header declares {declared / decoder.sample_rate:.2f} s")
    if problems:
        logger.warning(
            "%s: the audio ends early or is damaged (%s); using the %.2f s that decoded",
            name,
            "; ".join(problems),
            decoded / decoder.sample_rate,
        )


def _rechunk(pieces: Iterator[AudioArray], chunk_frames: int | None) -> Iterator[AudioArray]:
    """Regroup arrays into chunks of exactly ``chunk_frames`` (the last shorter), or one chunk."""
    if chunk_frames is None:
        everything = [piece for piece in pieces if len(piece)]
        if len(everything) == 1:
            yield everything[0]
        else:  # none at all when a few input samples resample to none
            yield np.concatenate(everything) if everything else np.zeros(0, np.float32)
        return
    pending: list[AudioArray] = []
    pending_frames = 0
    for piece in pieces:
        if not len(piece):
            continue
        pending.append(piece)
        pending_frames += len(piece)
        if pending_frames >= chunk_frames:
            joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
            whole = len(joined) - len(joined) % chunk_frames
            for start in range(0, whole, chunk_frames):
                yield joined[start : start + chunk_frames]
            rest = joined[whole:]
            pending, pending_frames = ([rest], len(rest)) if len(rest) else ([], 0)
    if pending:
        yield np.concatenate(pending) if len(pending) > 1 else pending[0]


@contextmanager
def _soundfile_decoder(source: _Input, name: str) -> Iterator[_Decoder]:
    import soundfile

    # Read before libsndfile opens the data: it shares a stream's position.
    wav_declared_frames = _wav_declared_frames(source)
    source.rewind()
    try:
        handle = soundfile.SoundFile(source.target)
    except (soundfile.SoundFileError, RuntimeError) as exc:
        raise _DecodeError(_soundfile_reason(exc)) from exc
    with handle:
        declared_frames = wav_declared_frames or handle.frames or None
        decoder = _Decoder(handle.samplerate, handle.channels, declared_frames, iter(()))

        def blocks() -> Iterator[npt.NDArray[np.float32]]:
            position = 0
            while True:
                try:
                    block = handle.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
                except (soundfile.SoundFileError, RuntimeError) as exc:
                    decoder.problems.append(
                        f"decoding stopped at {position / handle.samplerate:.2f} s: "
                        f"{_soundfile_reason(exc)}"
                    )
                    return
                if not len(block):
                    return
                position += len(block)
                yield block

        decoder.blocks = blocks()
        yield decoder


def _soundfile_reason(exc: Exception) -> str:
    return str(getattr(exc, "error_string", None) or exc)


@contextmanager
def _pyav_decoder(source: _Input, name: str) -> Iterator[_Decoder]:
    import av

    # "file:" keeps FFmpeg from reading a path with a colon in it as a protocol or URL.
    target = source.target
    url_or_stream = "file:" + os.path.abspath(target) if isinstance(target, str) else target
    try:
        container = av.open(url_or_stream, mode="r", metadata_errors="ignore")
    except (av.FFmpegError, OSError) as exc:
        raise _DecodeError(_ffmpeg_reason(exc)) from exc
    with container:
        if not container.streams.audio:
            kinds: list[str] = sorted({stream.type for stream in container.streams})
            raise AudioError(
                f"{name}: has no audio stream (it holds: {', '.join(kinds) or 'no streams'})"
            )
        stream = container.streams.audio[0]
        context = stream.codec_context
        if context is None:  # FFmpeg has no decoder for this codec
            codec = getattr(stream, "codec_tag", "") or "unknown"
            raise AudioError(f"{name}: its audio codec ({codec}) cannot be decoded")
        sample_rate = int(context.sample_rate or 0)
        declared = None
        if stream.duration and stream.time_base:
            declared = round(stream.duration * stream.time_base * sample_rate)
        elif container.duration:
            declared = round(container.duration / av.time_base * sample_rate)
        decoder = _Decoder(sample_rate, context.layout.nb_channels, declared, iter(()))

        def blocks() -> Iterator[npt.NDArray[np.float32]]:
            converter = _FrameConverter(context.layout, sample_rate)
            pending: list[npt.NDArray[Any]] = []
            pending_frames = 0
            skipped = 0
            packets = container.demux(stream)
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.FFmpegError as exc:
                    decoder.problems.append(f"reading stopped: {_ffmpeg_reason(exc)}")
                    break
                try:
                    decoded = packet.decode()
                except av.FFmpegError:
                    skipped += 1  # a damaged packet: FFmpeg's own tools skip it too
                    continue
                try:
                    converted = [out for frame in decoded for out in converter.convert(frame)]
                except _DecodeError as exc:
                    decoder.problems.append(f"decoding stopped: {exc}")
                    break
                pending.extend(converted)
                pending_frames += sum(len(samples) for samples in converted)
                if pending_frames >= _BLOCK_FRAMES:
                    yield np.concatenate(pending)
                    pending, pending_frames = [], 0
            try:
                pending.extend(converter.flush())
            except _DecodeError as exc:
                decoder.problems.append(f"decoding stopped: {exc}")
            if pending:
                yield np.concatenate(pending)
            if skipped:
                decoder.problems.append(f"{skipped} damaged packet(s) skipped")

        decoder.blocks = blocks()
        yield decoder


class _FrameConverter:
    """Converts decoded frames to float32 ``(frames, channels)`` arrays at one layout and rate,
    whatever each frame holds.

    A stream's frames can change format, layout or rate part-way (damage, concatenated files, a
    stream header that disagrees with its packets). PyAV's ``AudioResampler`` takes its input
    format from the first frame and refuses any other frame with a ValueError, or passes it
    through unchanged when the first one needed no conversion. So each run of frames alike gets
    a resampler of its own, flushed when the next run starts.

    The conversion is to packed (interleaved) float: PyAV finds a frame's planes by looking for
    a null pointer after the last one, which planar frames of 8 or more channels lack, so
    reading one (``to_ndarray``) crashed the process on a 7.1 file. A packed frame has one.

    A frame FFmpeg cannot convert (more channels than its resampler takes) raises _DecodeError.
    """

    def __init__(self, layout: Any, rate: int) -> None:
        self._layout = layout
        self._rate = rate
        self._input: tuple[str, str, int] | None = None
        self._resampler: Any = None

    def convert(self, frame: Any) -> list[npt.NDArray[np.float32]]:
        """The samples that are ready, ``frame``'s and any the last run left."""
        import av

        kind = (frame.format.name, frame.layout.name, frame.sample_rate)
        ready = []
        if kind != self._input:
            ready = self.flush()
            self._resampler = av.AudioResampler(format="flt", layout=self._layout, rate=self._rate)
            self._input = kind
        ready.extend(self._resample(frame))
        return ready

    def flush(self) -> list[npt.NDArray[np.float32]]:
        """The samples still held for the current run; the next frame starts a new one."""
        ready = self._resample(None) if self._resampler is not None else []
        self._resampler = self._input = None
        return ready

    def _resample(self, frame: Any) -> list[npt.NDArray[np.float32]]:
        import av

        try:
            converted = self._resampler.resample(frame)
        except av.FFmpegError as exc:
            sample_format, layout, rate = self._input or ("?", "?", 0)
            self._resampler = self._input = None  # nothing more to flush from it
            raise _DecodeError(
                f"FFmpeg cannot convert its audio ({layout}, {sample_format}, {rate} Hz): "
                f"{_ffmpeg_reason(exc)}"
            ) from exc
        channels = self._layout.nb_channels
        return [out.to_ndarray().reshape(-1, channels) for out in converted]


def _ffmpeg_reason(exc: Exception) -> str:
    return str(getattr(exc, "strerror", None) or exc)


# ---------------------------------------------------------------------------------------------
# WAV headers: libsndfile clamps a WAV's length to the data present and gives a vague reason for
# a header it rejects, so the header is read here to say what is wrong.


@dataclass(frozen=True)
class _WavHeader:
    """What a RIFF/WAVE header says; None for the parts the file is too short to hold."""

    sample_rate: int | None = None
    channels: int | None = None
    block_align: int | None = None
    data_size: int | None = None
    data_offset: int | None = None


def _read_wav_header(source: _Input) -> _WavHeader | None:
    """The fmt and data chunk fields of a RIFF/WAVE file, or None if it is not one."""
    head = source.head(1 << 16)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    header = _WavHeader()
    offset = 12
    while offset + 8 <= len(head):
        chunk_id = head[offset : offset + 4]
        (chunk_size,) = struct.unpack_from("<I", head, offset + 4)
        if chunk_id == b"fmt " and offset + 8 + 14 <= len(head):
            _, channels, sample_rate, _, block_align = struct.unpack_from(
                "<HHIIH", head, offset + 8
            )
            header = _WavHeader(sample_rate, channels, block_align)
        elif chunk_id == b"data":
            return replace(header, data_size=chunk_size, data_offset=offset + 8)
        offset += 8 + chunk_size + (chunk_size & 1)  # chunks are padded to even sizes
    return header


def _wav_declared_frames(source: _Input) -> int | None:
    """The frames a WAV header promises when that is more than the file holds, else None."""
    header = _read_wav_header(source)
    if header is None or header.data_size is None or header.data_offset is None:
        return None
    if header.data_size in _WAV_SIZE_PLACEHOLDERS or not header.block_align:
        return None
    if header.data_size <= source.size - header.data_offset:
        return None
    return header.data_size // header.block_align


def _diagnose_wav(source: _Input) -> str | None:
    """Why a WAV file neither library opens is unreadable, when its header tells."""
    header = _read_wav_header(source)
    if header is None:
        return None
    if header.sample_rate is None or header.data_offset is None:
        return "its WAV header is cut short (no fmt or data chunk)"
    if header.sample_rate == 0:
        return "its WAV header declares a sample rate of 0 Hz"
    if header.channels == 0:
        return "its WAV header declares 0 channels"
    return None
