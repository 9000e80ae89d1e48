"""Does our binding add anything to whisper.cpp? dattavani vs whisper.cpp's own whisper-cli.

Same source, same build flags, same model, same threads and the same decoding settings
(whisper-cli's: greedy, English, non-speech tokens allowed), run
alternately in separate processes. Compares the in-library time (model load + transcription: what
whisper-cli reports as "total time") and the whole process's wall time.

    python bench/binding_overhead.py --clips jfk,long --rounds 5 --threads 2

Run it on a quiet machine: whisper.cpp's workers spin, so any neighbour skews the figures.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from common import clip, median, timed, tiny_en_ggml, whisper_cli

# Runs in a fresh interpreter, so dattavani's own import and load count as whisper-cli's do.
OURS = """
import json, sys, time
import soundfile as sf
started = time.perf_counter()
from dattavani import Transcriber
model, wav, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
transcriber = Transcriber(model, device="cpu", threads=threads)
samples, _ = sf.read(wav, dtype="float32")
result = transcriber.transcribe(samples, language="en", suppress_non_speech_tokens=False)
t1 = time.perf_counter()
print(json.dumps({"library_s": t1 - t0}))
"""


def run_cli(binary: Path, model: Path, wav: Path, threads: int) -> tuple[float, float]:
    """(process wall s, whisper-cli's own "total time" s)."""
    # No -nt: it sets whisper.cpp's no_timestamps, which decodes without timestamp tokens (fewer
    # tokens, other seeks: 8.3 vs 9.9 s on the long clip), while we always decode them.
    wall, out = timed(
        [str(binary), "-m", str(model), "-f", str(wav), "-t", str(threads), "-bs", "1"]
    )
    total = re.search(r"total time\s*=\s*([\d.]+) ms", out)
    if total is None:
        sys.exit(f"whisper-cli printed no timings:\n{out}")
    return wall, float(total.group(1)) / 1000


def run_ours(model: Path, wav: Path, threads: int) -> tuple[float, float]:
    """(process wall s, load + transcription s)."""
    wall, out = timed([sys.executable, "-c", OURS, str(model), str(wav), str(threads)])
    return wall, json.loads(out.strip().splitlines()[-1])["library_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", default="jfk,long")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    binary, model = whisper_cli(), tiny_en_ggml()
    print(f"model {model.name}, threads {args.threads}, {args.rounds} rounds, alternating\n")
    print("| clip | engine | library s (median) | process s (median) | library ratio cli/ours |")
    print("|---|---|---|---|---|")
    for name in args.clips.split(","):
        wav = clip(name)
        cli_lib, cli_wall, ours_lib, ours_wall = [], [], [], []
        for _ in range(args.rounds):
            wall, lib = run_cli(binary, model, wav, args.threads)
            cli_wall.append(wall)
            cli_lib.append(lib)
            wall, lib = run_ours(model, wav, args.threads)
            ours_wall.append(wall)
            ours_lib.append(lib)
        ratio = median(cli_lib) / median(ours_lib)
        print(f"| {name} | whisper-cli | {median(cli_lib):.3f} | {median(cli_wall):.3f} | |")
        ours = f"{median(ours_lib):.3f} | {median(ours_wall):.3f}"
        print(f"| {name} | dattavani | {ours} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
