"""load_audio, iter_audio and audio_duration on real encoded files, bytes, streams and arrays.

The files are made here from the shared jfk recording with real encoders (PyAV's FFmpeg, and
libsndfile's libvorbis for Ogg Vorbis); ``write_jfk`` also serves tests/test_formats.py, which
transcribes one file of each format.
"""

from __future__ import annotations

import io
import logging
import os
import pwd
import re
import struct
import tempfile
import threading
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
import soxr

from dattavani import AudioError, OptionsError, load_audio
from dattavani.audio import audio_duration, iter_audio

FORMATS = ("wav", "flac", "mp3", "ogg", "opus", "m4a", "mp4")
RATES = (8000, 16000, 44100, 48000)
LAYOUTS = ("mono", "stereo")
LOSSLESS = ("wav", "flac")
JFK_SECONDS = 11.0

# format -> (FFmpeg container, FFmpeg audio encoder); "ogg" (Vorbis) is written by libsndfile
# because FFmpeg's own Vorbis encoder only takes stereo.
PYAV_ENCODERS = {
    "wav": ("wav", "pcm_s16le"),
    "flac": ("flac", "flac"),
    "mp3": ("mp3", "libmp3lame"),
    "opus": ("ogg", "libopus"),
    "m4a": ("ipod", "aac"),
    "mp4": ("mp4", "aac"),
}


def read_jfk(jfk_audio: Path) -> tuple[np.ndarray, int]:
    """The reference recording as float32 (frames, 2), read without dattavani."""
    samples, rate = soundfile.read(jfk_audio, dtype="float32", always_2d=True)
    if samples.shape[1] == 1:
        samples = np.repeat(samples, 2, axis=1)
    return samples, rate


def encode(
    samples: np.ndarray,
    rate: int,
    path: Path,
    container_format: str,
    audio_codec: str,
    video_codec: str | None = None,
    container_options: dict[str, str] | None = None,
) -> Path:
    """Write float32 (frames, channels) ``samples`` with a real FFmpeg encoder (and a video track).

    A codec that cannot take ``rate`` (Opus has no 44.1 kHz) gets the next rate it can, as every
    encoder does. Frames carry timestamps so that the muxer records the encoder's priming delay.
    """
    layout = "mono" if samples.shape[1] == 1 else "stereo"
    codec_rates = av.codec.Codec(audio_codec, "w").audio_rates
    stream_rate = (
        rate if not codec_rates or rate in codec_rates else min(r for r in codec_rates if r > rate)
    )
    with av.open(
        str(path), "w", format=container_format, container_options=container_options or {}
    ) as container:
        stream = container.add_stream(audio_codec, rate=stream_rate, layout=layout)
        video = None if video_codec is None else container.add_stream(video_codec, rate=1)
        if video is not None:
            video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
            for second in range(int(len(samples) / rate) + 1):
                picture = np.full((64, 64, 3), second * 20, np.uint8)
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                frame.pts = second
                container.mux(video.encode(frame))
            container.mux(video.encode(None))
        formats = [f.name for f in stream.codec_context.codec.audio_formats]
        sample_format = next((f for f in ("fltp", "flt") if f in formats), formats[0])
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples.T), format="fltp", layout=layout
        )
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        converter = av.AudioResampler(
            format=sample_format,
            layout=layout,
            rate=stream_rate,
            # PCM codecs take any frame size; 1024 gives packets of the usual size.
            frame_size=stream.codec_context.frame_size or 1024,
        )
        for converted in [*converter.resample(frame), *converter.resample(None)]:
            container.mux(stream.encode(converted))
        container.mux(stream.encode(None))
    return path


def write_jfk(samples: np.ndarray, rate: int, path: Path, fmt: str) -> Path:
    if fmt == "ogg":
        soundfile.write(path, samples, rate, format="OGG", subtype="VORBIS")
        return path
    return encode(samples, rate, path, *PYAV_ENCODERS[fmt])


def jfk_at(jfk_audio: Path, rate: int, layout: str) -> np.ndarray:
    """jfk resampled to ``rate``, as (frames, 1) or (frames, 2) float32."""
    samples, source_rate = read_jfk(jfk_audio)
    if layout == "mono":
        samples = samples.mean(axis=1, keepdims=True)
    return soxr.resample(samples, source_rate, rate).astype(np.float32)


def make_jfk_files(jfk_audio: Path, folder: Path) -> dict[tuple[str, int, str], Path]:
    """jfk in every format of FORMATS at every rate of RATES, mono and stereo."""
    files = {}
    for rate in RATES:
        for layout in LAYOUTS:
            samples = jfk_at(jfk_audio, rate, layout)
            for fmt in FORMATS:
                path = folder / f"jfk-{rate}-{layout}.{fmt}"
                files[fmt, rate, layout] = write_jfk(samples, rate, path, fmt)
    return files


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


def reference_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    """What the decoder should give for ``samples``: their mean over channels at 16 kHz."""
    return soxr.resample(samples.mean(axis=1), rate, 16000)


@pytest.fixture(scope="module")
def jfk_files(jfk_audio: Path, tmp_path_factory: pytest.TempPathFactory):
    return make_jfk_files(jfk_audio, tmp_path_factory.mktemp("jfk-formats"))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_rate_and_layout_decodes_to_the_signal(
    jfk_files, jfk_audio: Path, fmt: str, rate: int, layout: str
) -> None:
    path = jfk_files[fmt, rate, layout]
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1 and audio.flags.c_contiguous
    assert len(audio) == pytest.approx(JFK_SECONDS * 16000, rel=0.01)
    assert audio_duration(path) == pytest.approx(JFK_SECONDS, rel=0.01)
    expected = reference_16k(jfk_at(jfk_audio, rate, layout), rate)
    assert correlation(audio, expected) > (0.999 if fmt in LOSSLESS else 0.95)


def test_other_output_rates_and_the_default_agree(jfk_files) -> None:
    path = jfk_files["flac", 44100, "stereo"]
    at_8k = load_audio(path, sample_rate=8000)
    at_48k = load_audio(path, sample_rate=48000)
    assert len(at_8k) == pytest.approx(JFK_SECONDS * 8000, rel=0.01)
    assert len(at_48k) == pytest.approx(JFK_SECONDS * 48000, rel=0.01)
    assert correlation(soxr.resample(at_48k, 48000, 16000), load_audio(path)) > 0.999


#: (container, audio encoder, video encoder, suffix) of the video files the tests make.
VIDEO_FILES = (
    ("mp4", "aac", "mpeg4", ".mp4"),
    ("matroska", "flac", "mpeg4", ".mkv"),
    ("webm", "libopus", "libvpx", ".webm"),
)


@pytest.mark.parametrize(("container_format", "audio_codec", "video_codec", "suffix"), VIDEO_FILES)
def test_the_audio_track_of_a_video_file(
    jfk_audio: Path, tmp_path: Path, container_format, audio_codec, video_codec, suffix
) -> None:
    samples = jfk_at(jfk_audio, 48000, "stereo")
    path = encode(
        samples, 48000, tmp_path / f"talk{suffix}", container_format, audio_codec, video_codec
    )
    with av.open(str(path)) as container:  # the file really holds both tracks
        assert {s.type for s in container.streams} == {"video", "audio"}
    audio = load_audio(path)
    assert len(audio) == pytest.approx(JFK_SECONDS * 16000, rel=0.01)
    assert correlation(audio, reference_16k(samples, 48000)) > 0.9


#: jfk.mp3 as the ffmpeg command decodes it, made once (FFmpeg 5.1.9, Debian 12) with
#:     ffmpeg -nostdin -i ../shared/audio/jfk.mp3 -ac 1 -ar 16000 -f f32le jfk.f32
#: and summarised with numpy: its length, the RMS of each second, its peak (value and index) and
#: six samples at a few offsets. The file is 16 kHz mono, so no resampler is involved.
FFMPEG_JFK_MP3 = {
    "length": 176000,
    "rms_per_second": (
        0.212823,
        0.2284138,
        0.01548031,
        0.147552,
        0.1305766,
        0.1268311,
        0.1238351,
        0.1290781,
        0.1392853,
        0.1212706,
        0.05833498,
    ),
    "peak": (0.7821983, 11906),
    "samples": {
        8000: (-0.05071123, -0.05011969, -0.06651333, -0.0859608, -0.09039499, -0.07272919),
        40000: (0.02664767, 0.02192528, 0.01934387, 0.01831018, 0.01697609, 0.01586262),
        96000: (0.3821425, 0.5156972, 0.5988096, 0.5936902, 0.5049593, 0.3693879),
        150000: (-0.01211612, -0.02191294, -0.0274048, -0.03175798, -0.0361933, -0.04164938),
    },
}
#: How far a decoded sample may be from ffmpeg's: FFmpeg versions and CPUs round the MP3
#: synthesis filter differently in the last bits (PyAV 18.1's FFmpeg 8.1 gave exactly Debian's
#: FFmpeg 5.1.9 samples; libsndfile's libmpg123 differs by up to 2.4e-6).
FFMPEG_TOLERANCE = 1e-5


def test_mp3_decodes_to_what_the_ffmpeg_command_gives(jfk_mp3: Path) -> None:
    audio = load_audio(jfk_mp3)
    assert len(audio) == FFMPEG_JFK_MP3["length"]
    rms = [
        float(np.sqrt(np.mean(audio[i : i + 16000].astype(np.float64) ** 2)))
        for i in range(0, 176000, 16000)
    ]
    np.testing.assert_allclose(rms, FFMPEG_JFK_MP3["rms_per_second"], atol=FFMPEG_TOLERANCE)
    peak, at = FFMPEG_JFK_MP3["peak"]
    assert int(np.abs(audio).argmax()) == at
    assert abs(float(np.abs(audio).max()) - peak) <= FFMPEG_TOLERANCE
    for offset, expected in FFMPEG_JFK_MP3["samples"].items():
        np.testing.assert_allclose(audio[offset : offset + 6], expected, atol=FFMPEG_TOLERANCE)


@contextmanager
def captured_fd2() -> Iterator[tempfile._TemporaryFileWrapper]:
    """File descriptor 2 pointed at a temporary file: what C libraries write to stderr lands
    there, whatever Python's sys.stderr is."""
    with tempfile.TemporaryFile() as capture:
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            yield capture
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def test_decoding_writes_nothing_to_stderr(
    jfk_files, jfk_audio: Path, jfk_mp3: Path, tmp_path: Path
) -> None:
    # Every file the tests make (each format, rate and layout; the video files), jfk.mp3, and
    # each of them cut in half (the damage path), through every decoding entry point.
    samples = jfk_at(jfk_audio, 48000, "stereo")
    videos = [
        encode(samples, 48000, tmp_path / f"talk{suffix}", container, audio_codec, video_codec)
        for container, audio_codec, video_codec, suffix in VIDEO_FILES
    ]
    whole = [*jfk_files.values(), *videos, jfk_mp3]
    cut = []
    for path in whole:
        data = path.read_bytes()
        cut.append(tmp_path / f"cut-{path.parent.name}-{path.name}")
        cut[-1].write_bytes(data[: len(data) // 2])
    with captured_fd2() as stderr:
        for path in whole:
            assert len(load_audio(path)) > 0
            assert audio_duration(path) > 0
        for path in cut:
            # An M4A/MP4 cut before its index has nothing to decode: an AudioError.
            with suppress(AudioError):
                sum(len(chunk) for chunk in iter_audio(path))
        stderr.seek(0)
        written = stderr.read()
    assert written == b"", written.decode(errors="replace")[:2000]


def stereo_of_two_speakers(jfk_audio: Path, rate: int) -> np.ndarray:
    """Left: jfk. Right: jfk played backwards, so each channel is recognisably different."""
    speech = jfk_at(jfk_audio, rate, "mono")[:, 0]
    return np.stack([speech, speech[::-1] * 0.5], axis=1)


@pytest.mark.parametrize("fmt", ["wav", "m4a"])  # libsndfile and FFmpeg
def test_channel_picks_one_side_and_none_downmixes(jfk_audio: Path, tmp_path: Path, fmt) -> None:
    samples = stereo_of_two_speakers(jfk_audio, 44100)
    path = write_jfk(samples, 44100, tmp_path / f"interview.{fmt}", fmt)
    left, right = (soxr.resample(samples[:, i], 44100, 16000) for i in (0, 1))
    threshold = 0.999 if fmt == "wav" else 0.9
    assert correlation(load_audio(path, channel=0), left) > threshold
    assert correlation(load_audio(path, channel=1), right) > threshold
    assert correlation(load_audio(path, channel=0), right) < 0.3
    assert correlation(load_audio(path), (left + right) / 2) > threshold
    with pytest.raises(AudioError, match=r"channel=2 is out of range.*2 channel"):
        load_audio(path, channel=2)


def test_many_channels_downmix(tmp_path: Path) -> None:
    rate = 16000
    t = np.arange(rate * 2) / rate
    tones = np.stack([np.sin(2 * np.pi * f * t) * 0.2 for f in (200, 300, 500, 700)], axis=1)
    path = tmp_path / "four.wav"
    soundfile.write(path, tones.astype(np.float32), rate, subtype="FLOAT")
    assert np.allclose(load_audio(path), tones.mean(axis=1), atol=1e-6)
    assert np.allclose(load_audio(path, channel=3), tones[:, 3], atol=1e-6)


def test_bytes_file_objects_and_pipes(jfk_files) -> None:
    path = jfk_files["m4a", 44100, "stereo"]
    expected = load_audio(path)
    data = path.read_bytes()
    assert np.array_equal(load_audio(data), expected)
    assert np.array_equal(load_audio(bytearray(data)), expected)
    assert np.array_equal(load_audio(io.BytesIO(data)), expected)
    with open(path, "rb") as handle:
        assert np.array_equal(load_audio(handle), expected)
    flac = jfk_files["flac", 16000, "mono"]
    with open(flac, "rb") as handle:
        assert np.array_equal(load_audio(handle), load_audio(flac))

    read_end, write_end = os.pipe()
    writer = threading.Thread(target=lambda: _write_and_close(write_end, data))
    writer.start()
    with os.fdopen(read_end, "rb") as pipe:
        assert not pipe.seekable()
        assert np.array_equal(load_audio(pipe), expected)
    writer.join()


def _write_and_close(fd: int, data: bytes) -> None:
    with os.fdopen(fd, "wb") as pipe:
        pipe.write(data)


def test_text_streams_and_other_objects_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with open(text) as handle, pytest.raises(AudioError, match="binary mode"):
        load_audio(handle)
    with pytest.raises(AudioError, match="not an audio source"):
        load_audio(12345)  # type: ignore[arg-type]
    closed = io.BytesIO(b"RIFF")
    closed.close()
    with pytest.raises(AudioError, match="cannot be read: I/O operation on closed file"):
        load_audio(closed)


# ---------------------------------------------------------------------------------------------
# Arrays


def speech_like(n: int = 16000) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.uniform(-0.9, 0.9, n)).astype(np.float32)


@pytest.mark.parametrize(
    ("dtype", "to_pcm", "tolerance"),
    [
        (np.float32, lambda x: x, 0),
        (np.float64, lambda x: x.astype(np.float64), 1e-7),
        (np.float16, lambda x: x.astype(np.float16), 1e-3),
        (np.int8, lambda x: np.round(x * 128).astype(np.int8), 1 / 127),
        (np.int16, lambda x: np.round(x * 32768).astype(np.int16), 1 / 32768),
        (np.int32, lambda x: np.round(x.astype(np.float64) * 2**31).astype(np.int32), 1e-6),
        (np.int64, lambda x: (x.astype(np.float64) * 2**63).astype(np.int64), 1e-6),
        (np.uint8, lambda x: np.round(x * 128 + 128).astype(np.uint8), 1 / 127),
        (np.uint16, lambda x: np.round(x * 32768 + 32768).astype(np.uint16), 1 / 32767),
    ],
)
def test_arrays_of_each_dtype_are_scaled(dtype, to_pcm, tolerance) -> None:
    signal = speech_like()
    pcm = to_pcm(signal)
    assert pcm.dtype == dtype
    audio = load_audio(pcm)
    assert audio.dtype == np.float32 and audio.flags.c_contiguous
    assert np.max(np.abs(audio - signal)) <= tolerance
    stereo = load_audio(np.stack([pcm, pcm], axis=1))
    assert np.max(np.abs(stereo - signal)) <= tolerance
    assert np.max(np.abs(load_audio(np.stack([pcm, pcm], axis=1), channel=1) - signal)) <= (
        tolerance
    )


def test_float32_arrays_pass_through_without_a_copy() -> None:
    signal = speech_like()
    assert load_audio(signal) is signal
    strided = speech_like(32000)[::2]
    copied = load_audio(strided)
    assert copied.flags.c_contiguous and np.array_equal(copied, strided)
    chunks = list(iter_audio(signal, chunk_seconds=0.25))
    assert [len(c) for c in chunks] == [4000] * 4
    assert all(np.shares_memory(c, signal) for c in chunks)
    assert audio_duration(signal) == 1.0
    assert audio_duration(signal, sample_rate=8000) == 2.0


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.array([0.0, np.nan, 0.1], np.float32), "NaN or infinite"),
        (np.array([0.0, np.inf], np.float64), "NaN or infinite"),
        (np.zeros((10, 2, 2), np.float32), r"\(frames,\) or \(frames, channels\)"),
        (np.zeros((2, 16000), np.float32), "pass array.T"),
        (np.zeros(10, np.complex64), "not audio"),
        (np.zeros(10, bool), "not audio"),
    ],
)
def test_bad_arrays(array: np.ndarray, message: str) -> None:
    with pytest.raises(AudioError, match=message) as error:
        load_audio(array)
    assert str(array.shape) in str(error.value)


def test_channel_out_of_range_on_arrays() -> None:
    samples = speech_like()
    with pytest.raises(AudioError, match="channel=1 is out of range"):
        load_audio(samples, channel=1)
    # The one channel of a mono array is the array itself.
    np.testing.assert_array_equal(load_audio(samples, channel=0), load_audio(samples))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sample_rate": 0},
        {"sample_rate": 16000.0},
        {"sample_rate": 10_000_000},
        {"channel": -1},
        {"channel": 1.0},
        {"chunk_seconds": 0},
        {"chunk_seconds": float("nan")},
    ],
)
def test_bad_arguments_are_options_errors(jfk_audio: Path, kwargs) -> None:
    # The message names the argument and the value given, before any decoding.
    ((name, value),) = kwargs.items()
    named = re.escape(f"{name}={value!r}: expected")
    with pytest.raises(OptionsError, match=named):
        iter_audio(speech_like(), **kwargs)
    if name != "chunk_seconds":
        with pytest.raises(OptionsError, match=named):
            load_audio(jfk_audio, **kwargs)


# ---------------------------------------------------------------------------------------------
# Bad files: each an AudioError with the path and the reason


def wav_bytes(samples: np.ndarray, rate: int, channels: int = 1, data_size: int | None = None):
    """A 16-bit PCM WAV file, its header written by hand so that it can lie."""
    data = samples.astype("<i2").tobytes()
    size = len(data) if data_size is None else data_size
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
    riff_size = min(0xFFFF_FFFF, 4 + 8 + len(fmt) + 8 + size)
    header = b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + b"fmt " + struct.pack("<I", 16)
    return header + fmt + b"data" + struct.pack("<I", size) + data


def tone_pcm(seconds: float = 1.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)


def assert_audio_error(path: Path, reason: str) -> None:
    with pytest.raises(AudioError, match=reason) as error:
        load_audio(path)
    assert str(path) in str(error.value)


def test_missing_path_and_directory(tmp_path: Path) -> None:
    assert_audio_error(tmp_path / "nowhere.wav", "no such file")
    assert_audio_error(tmp_path, "is a directory")


def test_empty_file_text_file_and_empty_bytes(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert_audio_error(empty, r"is empty \(0 bytes\)")
    text = tmp_path / "notes.wav"
    text.write_text("These are meeting notes, not a recording.\n" * 20)
    assert_audio_error(text, "not a readable audio or video file")
    with pytest.raises(AudioError, match="empty"):
        load_audio(b"")


def test_unreadable_file(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        path = tmp_path / "secret.wav"
        path.write_bytes(wav_bytes(tone_pcm(), 16000))
        path.chmod(0o000)
        assert_audio_error(path, "Permission denied")
        return
    # root reads any file, so the check runs in a forked child that has become "nobody", on a
    # file in a folder that user can enter (pytest's tmp folders are private to root).
    nobody = pwd.getpwnam("nobody")
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)
        path = Path(folder) / "secret.wav"
        path.write_bytes(wav_bytes(tone_pcm(), 16000))
        path.chmod(0o000)
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child
            try:
                os.close(read_end)
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
                try:
                    load_audio(path)
                    message = "no error"
                except AudioError as error:
                    message = str(error)
                os.write(write_end, message.encode())
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            message = pipe.read()
        os.waitpid(child, 0)
    assert message == f"{path}: cannot be read: Permission denied"


def test_wav_cut_inside_its_header(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    path.write_bytes(wav_bytes(tone_pcm(), 16000)[:30])
    assert_audio_error(path, "WAV header is cut short")


def test_wav_header_claiming_more_data_decodes_what_is_there(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cut.wav"
    pcm = tone_pcm(2.0)
    path.write_bytes(wav_bytes(pcm, 16000)[: 44 + len(pcm)])  # half the data: 1 s of 2 s
    with caplog.at_level(logging.WARNING, logger="dattavani.audio"):
        audio = load_audio(path)
    assert len(audio) == 16000
    assert np.allclose(audio, pcm[:16000] / 32768, atol=1e-6)
    assert str(path) in caplog.text and "ends early or is damaged" in caplog.text
    assert "declares 2.00 s" in caplog.text and "1.00 s that decoded" in caplog.text


def test_streamed_wav_with_placeholder_sizes_decodes_silently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "piped.wav"
    path.write_bytes(wav_bytes(tone_pcm(), 16000, data_size=0xFFFF_FFFF))
    with caplog.at_level(logging.WARNING, logger="dattavani.audio"):
        assert len(load_audio(path)) == 16000
    assert caplog.text == ""


@pytest.mark.parametrize("fmt", ["mp3", "flac", "m4a"])
def test_files_cut_in_the_middle_decode_up_to_the_cut(
    jfk_files, jfk_audio: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, fmt: str
) -> None:
    source = jfk_files[fmt, 44100, "stereo"]
    if fmt == "m4a":  # index first, as phones write it, so the cut loses audio, not the index
        samples = jfk_at(jfk_audio, 44100, "stereo")
        source = encode(
            samples, 44100, tmp_path / "whole.m4a", "ipod", "aac", None, {"movflags": "faststart"}
        )
    data = source.read_bytes()
    path = tmp_path / f"cut.{fmt}"
    path.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="dattavani.audio"):
        audio = load_audio(path)
    assert 0.3 * JFK_SECONDS * 16000 < len(audio) < 0.6 * JFK_SECONDS * 16000
    assert correlation(audio, load_audio(source)) > 0.9
    assert str(path) in caplog.text and "ends early or is damaged" in caplog.text


@pytest.mark.parametrize(("fmt", "keep"), [("flac", 30), ("mp3", 100), ("m4a", 0.5)])
def test_files_cut_before_any_audio_are_errors(jfk_files, tmp_path: Path, fmt, keep) -> None:
    data = jfk_files[fmt, 44100, "stereo"].read_bytes()
    path = tmp_path / f"cut.{fmt}"
    # m4a keeps its index at the end, so losing the second half loses everything.
    path.write_bytes(data[: int(len(data) * keep) if keep < 1 else keep])
    assert_audio_error(path, "not a readable audio or video file")


def test_audio_of_no_samples_is_an_empty_array(tmp_path: Path) -> None:
    # faster-whisper's decode_audio and openai-whisper's load_audio give an empty array too.
    path = tmp_path / "nothing.wav"
    path.write_bytes(wav_bytes(np.zeros(0, np.int16), 44100))
    arrays = [np.zeros(0, np.float32), np.zeros(0, np.int16), np.zeros((0, 2), np.float64)]
    for source in [path, path.read_bytes(), *arrays]:
        audio = load_audio(source)
        assert audio.dtype == np.float32 and audio.shape == (0,)
        assert list(iter_audio(source)) == []
        assert audio_duration(source) == 0.0


@pytest.mark.parametrize(
    ("rate", "reason"),
    [
        (0, "sample rate of 0 Hz"),
        (100, "sample rate of 100 Hz"),
        (10_000_000, "sample rate of 10000000 Hz"),
    ],
)
def test_impossible_sample_rates(tmp_path: Path, rate: int, reason: str) -> None:
    path = tmp_path / f"rate{rate}.wav"
    path.write_bytes(wav_bytes(tone_pcm(), rate))
    assert_audio_error(path, reason)


def test_video_without_audio(jfk_audio: Path, tmp_path: Path) -> None:
    path = tmp_path / "silent-film.mp4"
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=1)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        for second in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            frame.pts = second
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    assert_audio_error(path, r"has no audio stream \(it holds: video\)")


def test_channel_out_of_range_on_a_file(jfk_files) -> None:
    path = jfk_files["wav", 16000, "mono"]
    with pytest.raises(AudioError, match=r"channel=1 is out of range; the audio has 1 channel"):
        load_audio(path, channel=1)


# ---------------------------------------------------------------------------------------------
# Streaming


def write_long_wav(path: Path, seconds: int, rate: int = 48000) -> None:
    """A long stereo 16-bit WAV, written a second at a time: a tone left, noise right."""
    rng = np.random.default_rng(1)
    with soundfile.SoundFile(path, "w", rate, 2, subtype="PCM_16") as out:
        for second in range(seconds):
            t = (np.arange(rate) + second * rate) / rate
            left = np.sin(2 * np.pi * 220 * t) * 0.3
            out.write(np.stack([left, rng.uniform(-0.1, 0.1, rate)], axis=1))


def stream_through(path: Path, chunk_seconds: float) -> tuple[list[int], int]:
    """Chunk lengths iter_audio yields and the peak Python memory while it runs."""
    tracemalloc.start()
    try:
        lengths = [len(chunk) for chunk in iter_audio(path, chunk_seconds=chunk_seconds)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return lengths, peak


def test_iter_audio_streams_a_long_wav_in_bounded_memory(tmp_path: Path) -> None:
    seconds = 180
    path = tmp_path / "long.wav"
    write_long_wav(path, seconds)
    lengths, peak = stream_through(path, chunk_seconds=5.0)
    assert all(n == 80000 for n in lengths[:-1]) and 0 < lengths[-1] <= 80000
    assert sum(lengths) == pytest.approx(seconds * 16000, abs=16)
    file_size = path.stat().st_size  # 34.6 MB; the whole file at 16 kHz would be 11.5 MB
    assert peak < 4_000_000 < file_size / 8, f"peak {peak} bytes for a {file_size} byte file"


def test_iter_audio_streams_a_long_mkv_in_bounded_memory(tmp_path: Path) -> None:
    seconds, rate = 180, 48000
    path = tmp_path / "long.mkv"
    # PCM in Matroska: FFmpeg decodes it, and writing it costs no encoding time.
    t = np.arange(seconds * rate, dtype=np.float32) / rate
    samples = (np.sin(2 * np.pi * 220 * t) * 0.3).astype(np.float32)[:, None]
    encode(samples, rate, path, "matroska", "pcm_s16le")
    del t, samples
    lengths, peak = stream_through(path, chunk_seconds=5.0)
    assert all(n == 80000 for n in lengths[:-1])
    assert sum(lengths) == pytest.approx(seconds * 16000, abs=16)
    file_size = path.stat().st_size
    assert peak < 4_000_000 < file_size / 4, f"peak {peak} bytes for a {file_size} byte file"


def test_streamed_resampling_equals_resampling_at_once(jfk_files) -> None:
    path = jfk_files["wav", 44100, "stereo"]
    samples, rate = soundfile.read(path, dtype="float32")
    at_once = soxr.resample(samples.mean(axis=1, dtype=np.float32), rate, 16000)
    assert np.allclose(load_audio(path), at_once, rtol=0, atol=1e-6)


def test_a_file_too_short_to_resample_to_anything(tmp_path: Path) -> None:
    path = tmp_path / "one-sample.wav"
    path.write_bytes(wav_bytes(np.array([1000], np.int16), 48000))
    assert len(load_audio(path)) <= 1
    assert audio_duration(path) == pytest.approx(1 / 48000)


def test_iter_audio_chunks_join_to_load_audio(jfk_files) -> None:
    path = jfk_files["mp3", 44100, "stereo"]
    chunks = list(iter_audio(path, chunk_seconds=2.0))
    assert [len(c) for c in chunks[:-1]] == [32000] * (len(chunks) - 1)
    assert np.array_equal(np.concatenate(chunks), load_audio(path))
