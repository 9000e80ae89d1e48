"""Model set-up costs (issue 3): conversion time and peak memory, and time to a ready Transcriber.

    python bench/model_ready.py --model base

- conversion: the CTranslate2 model (as its PyPI packages ship it) to f16 GGML, in a fresh
  process: wall time and peak RSS;
- ready, warm disk cache: a fresh process's ``Transcriber(name)`` with the model already
  converted in the cache (resolution, cache check, native load), import excluded;
- ready, in-process cache: a second ``Transcriber(name)`` in a process that holds the model.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from common import ct2_model, model_packages

CONVERT = """
import json, resource, sys, time
from dattavani.convert import convert_ct2
started = time.perf_counter()
convert_ct2(sys.argv[1], sys.argv[2], dtype="f16")
print(json.dumps({"seconds": time.perf_counter() - started,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

READY = """
import json, os, sys, time
from dattavani import Transcriber
import dattavani.models, dattavani._core  # imports are not part of "ready"
started = time.perf_counter()
first = Transcriber(sys.argv[1], device="cpu")
warm = time.perf_counter() - started
started = time.perf_counter()
second = Transcriber(sys.argv[1], device="cpu")
shared = time.perf_counter() - started
assert second.native_model is first.native_model
print(json.dumps({"warm_disk_s": warm, "in_process_s": shared}))
"""


def run(script: str, *args: str, env: dict[str, str] | None = None) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        sys.exit(f"{script.strip().splitlines()[0]} ... failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="base")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    source = ct2_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        conversions = [run(CONVERT, str(source), f"{tmp}/out.bin") for _ in range(args.repeat)]
    best = min(conversions, key=lambda r: r["seconds"])
    print(
        f"convert {args.model} (CTranslate2 -> GGML f16): {best['seconds']:.2f} s, "
        f"peak RSS {max(r['peak_rss_mb'] for r in conversions):.0f} MB "
        f"(best of {args.repeat})"
    )
    # A disk cache of its own, filled from the model's packages by the first run.
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, DATTAVANI_CACHE_DIR=cache, HF_HUB_OFFLINE="1")
        packages = model_packages(args.model)
        if packages is not None:
            env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(packages), env.get("PYTHONPATH")])
            )
        run(READY, args.model, env=env)
        readies = [run(READY, args.model, env=env) for _ in range(args.repeat)]
    warm = sorted(r["warm_disk_s"] for r in readies)[len(readies) // 2]
    shared = sorted(r["in_process_s"] for r in readies)[len(readies) // 2]
    print(f"Transcriber({args.model!r}) ready, warm disk cache: {warm * 1000:.0f} ms (median)")
    print(f"Transcriber({args.model!r}) ready, in-process cache: {shared * 1000:.3f} ms (median)")


if __name__ == "__main__":
    main()
