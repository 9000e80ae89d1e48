"""Does our binding add anything to whisper.cpp? dattavani vs whisper.cpp's own whisper-cli.

Same source, same build flags, same model, same threads and the same decoding settings
(greedy, English, non-speech tokens allowed, timestamps decoded), run alternately in separate
processes: whisper-cli, our binding alone (``dattavani._core``) and the public ``Transcriber``.
Compares the in-library time (model load + transcription: what whisper-cli reports as "total
time"; Python's imports excluded) and the whole process's wall time.

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

# Each runs in a fresh interpreter, so dattavani's own load counts as whisper-cli's does (the
# top-level imports are excluded; whisper-cli has none). The binding alone: dattavani._core, as
# whisper-cli drives whisper.cpp (load the file, transcribe the samples). The public API:
# Transcriber, which also resolves the model (importing what that needs), checks the file and
# estimates its memory before loading it.
CORE = """
import json, sys, time
import soundfile as sf
from dattavani.models import LoadParameters
from dattavani.options import TranscribeOptions
model, wav, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
options = TranscribeOptions(language="en", suppress_non_speech_tokens=False).to_native(threads)
t0 = time.perf_counter()
native = LoadParameters(use_gpu=False).load_model(model)
samples, _ = sf.read(wav, dtype="float32")
native.transcribe(samples, options)
print(json.dumps({"library_s": time.perf_counter() - t0}))
"""
TRANSCRIBER = """
import json, sys, time
import soundfile as sf
from dattavani import Transcriber
model, wav, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
transcriber = Transcriber(model, device="cpu", threads=threads)
samples, _ = sf.read(wav, dtype="float32")
result = transcriber.transcribe(samples, language="en", suppress_non_speech_tokens=False)
print(json.dumps({"library_s": time.perf_counter() - t0}))
"""
ENGINES = {"dattavani._core": CORE, "dattavani Transcriber": TRANSCRIBER}


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


def run_ours(script: str, model: Path, wav: Path, threads: int) -> tuple[float, float]:
    """(process wall s, load + transcription s)."""
    wall, out = timed([sys.executable, "-c", script, str(model), str(wav), str(threads)])
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
        library: dict[str, list[float]] = {"whisper-cli": []}
        process: dict[str, list[float]] = {"whisper-cli": []}
        for _ in range(args.rounds):
            wall, lib = run_cli(binary, model, wav, args.threads)
            process["whisper-cli"].append(wall)
            library["whisper-cli"].append(lib)
            for engine, script in ENGINES.items():
                wall, lib = run_ours(script, model, wav, args.threads)
                process.setdefault(engine, []).append(wall)
                library.setdefault(engine, []).append(lib)
        cli = median(library["whisper-cli"])
        for engine in library:
            ratio = "" if engine == "whisper-cli" else f"{cli / median(library[engine]):.3f}"
            times = f"{median(library[engine]):.3f} | {median(process[engine]):.3f}"
            print(f"| {name} | {engine} | {times} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
