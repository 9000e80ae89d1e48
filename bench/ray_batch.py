"""`dattavani batch` on a local Ray against one process: what Ray Data costs (issue 17).

    python bench/ray_batch.py --files 30 --repeat 2 --out bench/results/ray-batch-cpu-2t.md

A corpus of ``--files`` English clips from ../shared/speech (every k-th of them by name), three
ways, side by side in one run, in alternating order within each repeat:

- ``loop``: one Transcriber (all CPUs), a plain loop over the files;
- ``transcribe_many``: one Transcriber, ``--states`` files at once sharing the CPUs;
- ``ray``: :func:`dattavani.batch.transcribe_dataset` on a local Ray with the same shape (one
  actor with all CPUs and ``--states`` states), into a fresh output folder each time.

The in-process runs load their model before the clock starts; the Ray run's time includes all
it does once Ray is up (listing and hashing the files, starting the actor and loading its model,
writing Parquet). Ray's own start (``ray.init``) is measured apart. Throughput is seconds of audio
per second; the overhead is the Ray run's time over transcribe_many's, minus one.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import REPO, ggml_model

SPEECH = REPO.parent / "shared" / "speech"


def corpus(count: int) -> list[Path]:
    """``count`` English clips spread over the manifest (sorted by name, every k-th)."""
    with open(SPEECH / "manifest.tsv", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle, delimiter="\t") if r["language"] == "en"]
    rows.sort(key=lambda r: r["audio"])
    step = max(1, len(rows) // count)
    return [SPEECH / r["audio"] for r in rows[::step][:count]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--states", type=int, default=2, help="files decoded at once")
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    args = parser.parse_args()

    import ray

    from dattavani import Transcriber
    from dattavani.audio import audio_duration
    from dattavani.batch import transcribe_dataset

    files = corpus(args.files)
    audio = sum(audio_duration(f) for f in files)
    model = str(ggml_model("tiny.en", "q8_0"))
    cpus = len(os.sched_getaffinity(0))
    print(f"{len(files)} files, {audio:.1f} s of audio, {cpus} CPUs, tiny.en q8_0", flush=True)

    started = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    ray_startup = time.perf_counter() - started

    loop = Transcriber(model, threads=cpus, workers=1)
    many = Transcriber(model, threads=cpus, workers=args.states)
    scratch = Path(tempfile.mkdtemp(prefix="ray-batch-"))

    def run_loop() -> float:
        started = time.perf_counter()
        for f in files:
            loop.transcribe(f, language="en")
        return time.perf_counter() - started

    def run_many() -> float:
        started = time.perf_counter()
        errors = [item.error for item in many.transcribe_many(files, language="en") if item.error]
        assert not errors, errors
        return time.perf_counter() - started

    def run_ray() -> float:
        output = scratch / f"out-{time.monotonic_ns()}"
        started = time.perf_counter()
        summary = transcribe_dataset(
            [str(f) for f in files],
            output,
            model,
            actors=1,
            threads_per_actor=cpus,
            states_per_actor=args.states,
            language="en",
        )
        seconds = time.perf_counter() - started
        assert summary.transcribed == len(files) and not summary.failed, summary.format()
        shutil.rmtree(output)
        return seconds

    runs = {"loop": run_loop, "transcribe_many": run_many, "ray": run_ray}
    times: dict[str, list[float]] = {name: [] for name in runs}
    try:
        for repeat in range(args.repeat):
            order = list(runs) if repeat % 2 == 0 else list(reversed(runs))
            for name in order:
                times[name].append(runs[name]())
                print(f"  repeat {repeat + 1} {name}: {times[name][-1]:.2f} s", flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)

    medians = {name: statistics.median(values) for name, values in times.items()}
    lines = [
        f"{len(files)} clips from ../shared/speech, {audio:.1f} s of audio; tiny.en q8_0; "
        f"{cpus} CPUs; {args.states} files at once (transcribe_many and the Ray actor); "
        f"median of {args.repeat}.",
        "",
        "| run | seconds | audio s per s | vs transcribe_many |",
        "|---|---:|---:|---:|",
    ]
    for name, seconds in medians.items():
        ratio = seconds / medians["transcribe_many"]
        lines.append(f"| {name} | {seconds:.2f} | {audio / seconds:.1f} | {ratio:.2f}x |")
    overhead = medians["ray"] / medians["transcribe_many"] - 1
    lines += [
        "",
        f"Ray's overhead over transcribe_many: {overhead:+.1%} (goal: at most +10%). "
        f"ray.init, apart: {ray_startup:.2f} s.",
    ]
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
