"""Peak memory of large-v3-turbo q5_0 on the 5-minute clip (issue 7), without turbo's weights.

    python bench/turbo_memory.py                 # the whole 306 s clip (minutes on 2 cores)
    python bench/turbo_memory.py --seconds 60    # its first minute

No large-v3-turbo weights are reachable here, so this writes a GGML file of turbo's exact
dimensions (32 encoder layers and 4 decoder layers of width 1280, 128 mel bands, 51866 tokens)
with random weights (seeded), quantizes it to q5_0 with dattavani, and transcribes the clip in a
fresh process that reports its peak RSS (ru_maxrss) beside dattavani's own estimate of what the
model allocates. The memory follows from the dimensions, not the weights' values: the weights'
bytes, the KV caches and compute buffers sized when the decoder state is made, the audio and its
log-mel. The words do not: random weights decode nonsense, so decoding is greedy at temperature
0 alone (no fallback, which would add the KV caches of best_of decoders: the estimate below
counts one state).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import clip, random_model, work_dir
from dattavani import _core
from dattavani.convert.ggml_writer import WhisperHParams
from dattavani.memory import estimate_memory

TURBO = WhisperHParams(
    n_vocab=51866,
    n_audio_ctx=1500,
    n_audio_state=1280,
    n_audio_head=20,
    n_audio_layer=32,
    n_text_ctx=448,
    n_text_state=1280,
    n_text_head=20,
    n_text_layer=4,
    n_mels=128,
)

RUN = """
import json, resource, sys, time
import soundfile
from dattavani import Transcriber
audio, _ = soundfile.read(sys.argv[2], dtype="float32", frames=int(float(sys.argv[3]) * 16000))
transcriber = Transcriber(sys.argv[1], device="cpu", threads=2, workers=1)
started = time.perf_counter()
result = transcriber.transcribe(audio, language="en", temperature=0.0)
print(json.dumps({
    "seconds": time.perf_counter() - started,
    "audio_seconds": result.duration,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def turbo_q5_0() -> Path:
    """The random-weight turbo-shaped model at q5_0, made once in bench/.work/."""
    target = work_dir() / "ggml-random-turbo-q5_0.bin"
    if not target.exists():
        f16 = work_dir() / "ggml-random-turbo-f16.bin"
        print(f"writing {f16} (random weights, turbo's dimensions)", file=sys.stderr)
        random_model(f16, TURBO, "f16", seed=0)
        _core.quantize_model(str(f16), str(target), "q5_0")
        f16.unlink()
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=306.0, help="of the long clip")
    args = parser.parse_args()
    model = turbo_q5_0()
    estimate = estimate_memory(model, states=1, flash_attn=True)
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(model), str(clip("long")), str(args.seconds)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"transcription failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"large-v3-turbo-shaped q5_0 (random weights), {figures['audio_seconds']:.0f} s of audio, "
        f"2 threads: peak RSS {figures['peak_rss_mb']:.0f} MB in {figures['seconds']:.0f} s; "
        f"estimated allocation {estimate.total / 1e6:.0f} MB (weights {estimate.weights / 1e6:.0f}"
        f" MB, one decoder state {estimate.per_state / 1e6:.0f} MB)"
    )


if __name__ == "__main__":
    main()
