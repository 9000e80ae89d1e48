"""How whisper.cpp's OpenMP workers wait, quiet and beside a neighbour (issue 7, under load).

    python bench/wait_policy.py --model tiny.en --clip long --repeat 3

ggml's CPU backend, built with OpenMP, meets at an `omp barrier` after every graph node. libgomp
spins there for GOMP_SPINCOUNT iterations (300,000 by default) before it sleeps, so when a
neighbour takes one of the cores, the other worker burns its time slice spinning. Each policy runs
in a fresh process (libgomp reads its environment once, when it is loaded), quiet and with
busy loops on one and on two CPUs (`common.background_load`; nice 19 by default, `--nice 0` for a
neighbour of equal priority), policies alternating within each repeat; medians of the
transcription time are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from common import background_load, clip, ggml_model, median, rotated

RUN = """
import json, sys, time
import numpy as np
from dattavani import Transcriber
transcriber = Transcriber(sys.argv[1], threads=int(sys.argv[3]))
transcriber.transcribe(np.zeros(16000, np.float32), language="en")  # warm-up: first-call set-up
started = time.perf_counter()
result = transcriber.transcribe(sys.argv[2], language="en")
print(json.dumps({"seconds": time.perf_counter() - started, "text": result.text}))
"""

#: name -> environment. "libgomp default" spells out libgomp's own spin count, so that the row
#: means the same whatever default dattavani sets when neither variable is given.
POLICIES = {
    "libgomp default (spin 300000)": {"GOMP_SPINCOUNT": "300000"},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
    "GOMP_SPINCOUNT=1000": {"GOMP_SPINCOUNT": "1000"},
    "OMP_WAIT_POLICY=passive": {"OMP_WAIT_POLICY": "passive"},
    "dattavani default": {},
}


def run(model: str, audio: str, threads: int, policy: dict[str, str]) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    done = subprocess.run(
        [sys.executable, "-c", RUN, model, audio, str(threads)],
        env=env | policy,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny.en", help="bench model name (tiny.en or base)")
    parser.add_argument("--precision", default="q8_0")
    parser.add_argument("--clip", default="long", choices=("jfk", "long"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loads", default="0,1,2", help="busy CPUs beside the runs, e.g. 0,1,2")
    parser.add_argument("--nice", type=int, default=19, help="the busy loops' nice value")
    args = parser.parse_args()
    model = str(ggml_model(args.model, args.precision))
    audio = str(clip(args.clip))
    loads = [int(n) for n in args.loads.split(",")]
    times: dict[tuple[str, int], list[float]] = {}
    for load in loads:
        with background_load(load, nice=args.nice):
            for repeat in range(args.repeat):
                for name in rotated(list(POLICIES), repeat):
                    seconds = run(model, audio, args.threads, POLICIES[name])
                    times.setdefault((name, load), []).append(seconds)
                    print(f"{name}, {load} busy CPUs: {seconds:.2f} s", file=sys.stderr)
    print(
        f"{args.model} {args.precision}, {args.clip} clip, {args.threads} threads, "
        f"transcription s (median of {args.repeat}); busy loops at nice {args.nice}; "
        f"load average before: {os.getloadavg()}"
    )
    print()
    print("| policy | " + " | ".join(f"{n} busy CPUs" for n in loads) + " |")
    print("|---|" + "---:|" * len(loads))
    for name in POLICIES:
        cells = " | ".join(f"{median(times[(name, n)]):.2f}" for n in loads)
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
