"""Coverage-guided fuzzing of load_audio with atheris: any bytes in, an array or AudioError out.

    python bench/fuzz_audio.py -max_total_time=600          # the issue's 10 minutes
    python bench/fuzz_audio.py -runs=0 CRASH_FILE            # replay a finding

Every input is handed to ``dattavani.load_audio`` as bytes. The outcome must be a 1-D finite
float32 array or an ``AudioError``/``OptionsError``; any other exception is reported by atheris
as a finding (with the input saved as ``crash-*``), and a crash of libsndfile or FFmpeg kills the
process, which libFuzzer reports the same way. dattavani.audio is instrumented, so the search is
guided by its branches (the WAV header checks, the decoder fallbacks, the damage reports); the
decoding libraries are not. The corpus starts from short real files in every format
load_audio reads, made here; it grows in bench/.work/fuzz-audio/ and is reused by later runs.
Arguments after the script's own are libFuzzer's (``-max_total_time``, ``-jobs``, ...).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import atheris
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from common import work_dir
from dattavani.audio import load_audio
from dattavani.errors import AudioError, OptionsError

# (container, codec, layout) of the seed files, as FFmpeg names them; WAV also as float and
# 8-bit; Matroska also as 7.1 (8 channels: PyAV mishandled planar frames of 8 or more).
SEED_FORMATS = {
    "wav": ("wav", "pcm_s16le", "stereo"),
    "wav-float": ("wav", "pcm_f32le", "stereo"),
    "wav-u8": ("wav", "pcm_u8", "stereo"),
    "flac": ("flac", "flac", "stereo"),
    "mp3": ("mp3", "libmp3lame", "stereo"),
    "ogg": ("ogg", "libopus", "stereo"),
    "m4a": ("ipod", "aac", "stereo"),
    "mkv": ("matroska", "pcm_s16le", "stereo"),
    "mkv-7.1": ("matroska", "pcm_s16le", "7.1"),
}


def write_seeds(folder: Path) -> None:
    """A 0.1 s chirp (each channel starting elsewhere in it) in each of SEED_FORMATS (small
    seeds mutate fastest)."""
    import av

    rate = 48000
    t = np.arange(rate // 10) / rate
    chirp = np.sin(2 * np.pi * (200 + 4000 * t) * t).astype(np.float32) * 0.5
    folder.mkdir(parents=True, exist_ok=True)
    for name, (container_format, codec, layout) in SEED_FORMATS.items():
        path = folder / f"seed.{name}"
        if path.exists():
            continue
        channels = av.AudioLayout(layout).nb_channels
        # (frames, channels) interleaved into one packed plane: PyAV cannot fill a planar
        # frame of 8 channels.
        packed = np.stack([np.roll(chirp, 500 * c) for c in range(channels)], axis=1)
        with av.open(str(path), "w", format=container_format) as container:
            stream = container.add_stream(codec, rate=rate, layout=layout)
            frame = av.AudioFrame.from_ndarray(packed.reshape(1, -1), format="flt", layout=layout)
            frame.sample_rate = rate
            resampler = av.AudioResampler(
                format=stream.codec_context.codec.audio_formats[0].name,
                layout=layout,
                rate=rate,
                frame_size=stream.codec_context.frame_size or 1024,
            )
            for converted in [*resampler.resample(frame), *resampler.resample(None)]:
                container.mux(stream.encode(converted))
            container.mux(stream.encode(None))


def test_one_input(data: bytes) -> None:
    try:
        audio = load_audio(data)
    except (AudioError, OptionsError):
        return
    if audio.dtype != np.float32 or audio.ndim != 1 or not np.isfinite(audio).all():
        raise AssertionError(f"load_audio returned {audio.dtype} {audio.shape} with non-finite")


def main() -> None:
    import av.logging

    av.logging.set_level(av.logging.PANIC)  # damaged input makes FFmpeg chatty
    logging.getLogger("dattavani").setLevel(logging.ERROR)
    corpus = work_dir() / "fuzz-audio"
    write_seeds(corpus)
    # The editable install's import hook hides our modules from instrument_imports(), so the
    # Python code loaded by now (dattavani.audio among it) is instrumented in place instead.
    load_audio(corpus / "seed.wav")  # imports the decoders' Python side too
    atheris.instrument_all()
    atheris.Setup(libfuzzer_args(corpus), test_one_input)
    atheris.Fuzz()


def libfuzzer_args(corpus: Path) -> list[str]:
    """sys.argv with our defaults first (later flags win) and ``corpus`` if none is named."""
    # A declared length is decoded in bounded blocks, so 100 kB inputs are plenty.
    defaults = ["-max_len=100000", "-timeout=20", "-rss_limit_mb=3000"]
    named = [arg for arg in sys.argv[1:] if not arg.startswith("-")]
    return [sys.argv[0], *defaults, *sys.argv[1:], *([] if named else [str(corpus)])]


if __name__ == "__main__":
    main()
