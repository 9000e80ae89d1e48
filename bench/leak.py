"""Memory over many loads and transcriptions: does resident memory come back?

Loads and frees a model ``--loads`` times (each through a Transcriber on a private ModelCache,
closed again, so the weights are freed), then runs ``--transcriptions`` transcriptions of a
4.5 s jfk clip on one Transcriber, and reports how much resident memory grew in each phase after
its warm-up. Exits 1 if either phase grew by more than ``--max-growth-mb``.

    python bench/leak.py                                   # the issue's 200 and 500, < 5 MB
    python bench/leak.py --loads 12 --transcriptions 24 --max-growth-mb 40 --json   # the test's

Resident memory is read from /proc/self/statm after a garbage collection and glibc's
malloc_trim, so memory the allocator keeps in reserve is not counted as growth. Linux only.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from common import SAMPLE_RATE, speech_sources, tiny_en_ggml

# "Ask not what your country can do for you", decoded greedily with a 7.7 s encoder context: the
# same work as a full call, a quarter of the time.
CLIP_SECONDS = (3.2, 7.7)
FAST = {"temperature": 0.0, "audio_ctx": 384}
_LIBC = ctypes.CDLL("libc.so.6")


def resident_bytes() -> int:
    """Resident memory of this process once freed memory went back to the system."""
    gc.collect()
    _LIBC.malloc_trim(0)
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(step: Callable[[], object], times: int, warmup: int) -> dict[str, float]:
    """Run ``step`` ``warmup`` times, then ``times`` times; resident memory at each end."""
    for _ in range(warmup):
        step()
    before = resident_bytes()
    started = time.perf_counter()
    for _ in range(times):
        step()
    after = resident_bytes()
    return {
        "runs": times,
        "warmup_runs": warmup,
        "rss_after_warmup_mb": before / 1e6,
        "rss_at_end_mb": after / 1e6,
        "growth_mb": (after - before) / 1e6,
        "seconds": time.perf_counter() - started,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a GGML file (default: tiny.en f16)")
    parser.add_argument("--loads", type=int, default=200)
    parser.add_argument("--transcriptions", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=5, help="runs of each phase not counted")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-growth-mb", type=float, default=5.0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    from dattavani import Transcriber, load_audio
    from dattavani.models import ModelCache

    model = args.model or tiny_en_ggml()
    speech = load_audio(speech_sources()[0])
    start, end = (round(s * SAMPLE_RATE) for s in CLIP_SECONDS)
    clip = np.ascontiguousarray(speech[start:end])

    def load_and_free() -> None:
        Transcriber(model, device="cpu", threads=args.threads, model_cache=ModelCache(1)).close()

    transcriber = Transcriber(model, device="cpu", threads=args.threads, model_cache=ModelCache(1))
    expected = transcriber.transcribe(clip, **FAST).text

    def transcribe() -> None:
        text = transcriber.transcribe(clip, **FAST).text
        if text != expected:
            raise AssertionError(f"transcript changed: {text!r} != {expected!r}")

    report = {
        "model": str(model),
        "threads": args.threads,
        "max_growth_mb": args.max_growth_mb,
        "load_and_free": measure(load_and_free, args.loads, args.warmup),
        "transcribe": measure(transcribe, args.transcriptions, args.warmup),
    }
    transcriber.close()
    ok = all(report[p]["growth_mb"] < args.max_growth_mb for p in ("load_and_free", "transcribe"))
    report["ok"] = ok
    if args.json:
        print(json.dumps(report))
    else:
        for phase in ("load_and_free", "transcribe"):
            r = report[phase]
            print(
                f"{phase:14} {r['runs']:4d} runs in {r['seconds']:7.1f} s: resident "
                f"{r['rss_after_warmup_mb']:7.1f} MB -> {r['rss_at_end_mb']:7.1f} MB "
                f"({r['growth_mb']:+.2f} MB; bound {args.max_growth_mb} MB)"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
