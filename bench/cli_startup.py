"""How fast ``dattavani --help`` answers, against openai-whisper's ``whisper --help``.

Both are whole processes started the way a user starts them (the installed console scripts), run
alternately after one warm-up each, so the file cache is warm for both. Goal (issue 5): dattavani
under 0.3 s and at least 5x faster than openai-whisper.

    python bench/cli_startup.py --rounds 20
    python bench/cli_startup.py --install-openai-whisper   # once: a venv under bench/.work/

openai-whisper is not a dependency of dattavani: ``--install-openai-whisper`` puts it (and the
CPU PyTorch it needs) into its own virtual environment, bench/.work/openai-whisper (the one
bench/run.py uses), which later runs find by themselves. ``--whisper PATH`` names another
``whisper`` script instead.
``--importtime`` also lists the slowest imports of ``dattavani --help`` (``python -X importtime``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from common import median, openai_whisper_python, timed, work_dir

GOAL_SECONDS = 0.3
GOAL_SPEEDUP = 5.0


def dattavani_script() -> Path:
    """The ``dattavani`` console script of this interpreter's environment."""
    beside = Path(sys.executable).parent / "dattavani"
    found = beside if beside.exists() else shutil.which("dattavani")
    if found is None:
        sys.exit("the dattavani command is not installed: pip install -e . (from the repo root)")
    return Path(found)


def openai_whisper_venv() -> Path:
    return work_dir() / "openai-whisper"


def find_whisper(explicit: str | None) -> Path | None:
    """openai-whisper's ``whisper`` script: --whisper, our bench venv, or this environment's."""
    if explicit:
        return Path(explicit)
    candidates = [
        openai_whisper_venv() / "bin" / "whisper",
        Path(sys.executable).parent / "whisper",
    ]
    for candidate in candidates:
        if candidate.exists() and _is_openai_whisper(candidate):
            return candidate
    return None


def _is_openai_whisper(script: Path) -> bool:
    # Another package ships a `whisper` module too (graphite's); openai's has `load_model`.
    python = script.parent / "python"
    probe = "import importlib.metadata as m; m.distribution('openai-whisper')"
    return subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0


def install_openai_whisper() -> Path:
    return openai_whisper_python().parent / "whisper"  # the environment bench/run.py uses too


def slowest_imports(command: list[str], count: int = 12) -> list[tuple[int, str]]:
    """(cumulative microseconds, module) of the slowest top-level imports of ``command``."""
    python = [sys.executable, "-X", "importtime", *command]
    done = subprocess.run(python, capture_output=True, text=True, check=True)
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        # importtime indents nested imports by two spaces a level.
        if not name.startswith("  ") and cumulative.strip().isdigit():
            rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="timed runs of each command")
    parser.add_argument("--whisper", help="path of openai-whisper's whisper script")
    parser.add_argument("--install-openai-whisper", action="store_true")
    parser.add_argument("--importtime", action="store_true", help="list dattavani's slow imports")
    args = parser.parse_args()

    ours = [str(dattavani_script()), "--help"]
    whisper = (
        install_openai_whisper() if args.install_openai_whisper else find_whisper(args.whisper)
    )
    theirs = [str(whisper), "--help"] if whisper else None
    if theirs is None:
        print(
            "openai-whisper not found: timing dattavani alone. Run with --install-openai-whisper "
            "(or pip install openai-whisper here, or pass --whisper PATH) to compare."
        )

    commands = [c for c in (ours, theirs) if c]
    for command in commands:
        timed(command)  # warm-up: file cache, .pyc files
    times: dict[str, list[float]] = {c[0]: [] for c in commands}
    for _ in range(args.rounds):
        for command in commands:
            times[command[0]].append(timed(command)[0])

    ours_median = median(times[ours[0]])
    print(f"rounds: {args.rounds}, alternating; wall time of the whole process")
    for command in commands:
        values = times[command[0]]
        print(f"{command[0]} --help: median {median(values):.3f} s, min {min(values):.3f} s")
    verdict = "meets" if ours_median < GOAL_SECONDS else "misses"
    print(f"dattavani --help {verdict} the goal of {GOAL_SECONDS} s ({ours_median:.3f} s)")
    if theirs:
        speedup = median(times[theirs[0]]) / ours_median
        verdict = "meets" if speedup >= GOAL_SPEEDUP else "misses"
        print(
            f"speed-up over openai-whisper: {speedup:.1f}x ({verdict} the goal of {GOAL_SPEEDUP}x)"
        )
    if args.importtime:
        print("slowest imports of dattavani --help (cumulative):")
        module = [
            "-c",
            "import sys; from dattavani.cli import main; sys.argv[1:] = ['--help']; main()",
        ]
        for micros, name in slowest_imports(module):
            print(f"  {micros / 1000:7.1f} ms  {name}")


if __name__ == "__main__":
    main()
