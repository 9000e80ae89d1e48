"""Peak memory against file length: a 60+ minute file vs a 10-minute one (issue 4).

    python bench/long_memory.py --minutes 10,60 --model tiny.en
    python bench/long_memory.py --minutes 10,60 --model tiny.en --batch-size 8   # batched

Each file is written once to bench/.work/ as 16 kHz mono FLAC (the shared speech with pauses,
streamed to disk block by block), then transcribed in a fresh process that reports its peak RSS
(ru_maxrss). dattavani streams the decode and feeds whisper.cpp windows of at most 360 s, so the
peak should not grow with the file's length; batched, it holds the window and the chunks in
flight.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from common import SAMPLE_RATE, TRANSCRIPTS, long_speech, speech_sources, work_dir

RUN = """
import json, resource, sys, time
from dattavani import Transcriber
started = time.perf_counter()
batched = {"batch_size": int(sys.argv[4])} if sys.argv[4] != "0" else {}
result = Transcriber(sys.argv[1], threads=int(sys.argv[3])).transcribe(sys.argv[2], **batched)
print(json.dumps({
    "seconds": time.perf_counter() - started,
    "audio_seconds": result.duration,
    "segments": len(result.segments),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def long_file(minutes: int) -> Path:
    """``minutes`` of speech as FLAC, written 5 minutes at a time (never whole in memory)."""
    from dattavani import load_audio

    path = work_dir() / f"speech-{minutes}min.flac"
    if path.exists():
        return path
    block, _ = long_speech([(load_audio(p), TRANSCRIPTS[p.name]) for p in speech_sources()])
    tmp = path.with_suffix(".tmp.flac")
    with sf.SoundFile(tmp, "w", SAMPLE_RATE, 1, format="FLAC", subtype="PCM_16") as out:
        remaining = minutes * 60 * SAMPLE_RATE
        while remaining > 0:
            piece = block[:remaining]
            out.write(np.ascontiguousarray(piece))
            remaining -= len(piece)
    os.replace(tmp, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", default="10,60")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=0, help="batched (default 0: not)")
    args = parser.parse_args()
    print("| file | audio | transcription s | x real time | segments | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    peaks = []
    for minutes in (int(m) for m in args.minutes.split(",")):
        path = long_file(minutes)
        done = subprocess.run(
            [
                *(sys.executable, "-c", RUN, args.model, str(path)),
                *(str(args.threads), str(args.batch_size)),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(done.stdout.strip().splitlines()[-1])
        peaks.append(r["peak_rss_mb"])
        print(
            f"| {path.name} | {r['audio_seconds'] / 60:.0f} min | {r['seconds']:.1f} | "
            f"{r['audio_seconds'] / r['seconds']:.0f}x | {r['segments']} | {r['peak_rss_mb']:.0f} |"
        )
    if len(peaks) > 1:
        growth = peaks[-1] - peaks[0]
        print(f"\npeak RSS growth from the shortest to the longest file: {growth:+.0f} MB")


if __name__ == "__main__":
    main()
