"""Load on ``dattavani serve`` against whisper.cpp's own ``whisper-server``, side by side.

Both serve the same GGML file (what ``Transcriber("tiny.en")`` loads on the CPU: tiny.en at q8_0
from dattavani's model cache) with the same CPU threads; whisper-server is built from the same
whisper.cpp source and flags as our module (bench/common.py). For each concurrency, ``--requests``
uploads of the same 16 kHz WAV are sent by that many client threads at once; per server and
level the bench reports throughput (seconds of audio transcribed per second of wall time) and
the median and 95th percentile of the request latency. The servers take turns level by level,
in alternating order, so that drift on a shared machine hits both alike.

    python bench/serve_load.py --threads 2 --workers 2 --concurrency 1,2,4,8 --requests 16 \\
        --output bench/results/serve-load-2t.md
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import common

BOUNDARY = "dattavani-bench-boundary"


@dataclass(frozen=True)
class Level:
    """One server at one concurrency."""

    server: str
    concurrency: int
    requests: int
    audio_seconds: float
    wall_seconds: float
    latencies: tuple[float, ...]

    @property
    def throughput(self) -> float:
        return self.audio_seconds / self.wall_seconds

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p95(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Server:
    name: str
    url: str  # where uploads go
    fields: dict[str, str]


def multipart(fields: dict[str, str], audio: bytes) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="jfk.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n".encode()
        + audio
        + b"\r\n"
    )
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(parts)


def transcribe(server: Server, body: bytes) -> tuple[float, str]:
    """One upload; its latency and the text it got back."""
    request = urllib.request.Request(
        server.url,
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        text = json.loads(response.read())["text"]
    return time.perf_counter() - started, text


def run_level(
    server: Server, body: bytes, seconds: float, concurrency: int, requests: int
) -> Level:
    transcribe(server, body)  # warm: the first request of a level is not timed
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda _: transcribe(server, body), range(requests)))
    wall = time.perf_counter() - started
    texts = {text.strip() for _, text in results}
    if len(texts) != 1 or "Americans" not in next(iter(texts)):
        raise RuntimeError(f"{server.name}: unexpected transcripts {texts}")
    return Level(
        server.name,
        concurrency,
        requests,
        seconds * requests,
        wall,
        tuple(latency for latency, _ in results),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until_up(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 300
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not come up") from None
            time.sleep(0.2)


@contextmanager
def running(command: list[str], health: str, what: str, env: dict[str, str]) -> Iterator[None]:
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_until_up(health, process, what)
            yield
        except BaseException:
            log.seek(0)
            print(
                f"{what}'s output:\n{log.read().decode(errors='replace')[-4000:]}", file=sys.stderr
            )
            raise
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def render(
    levels: list[Level],
    args: argparse.Namespace,
    model: Path,
    command: str,
    loads: tuple[float, float],
) -> str:
    by = {(lv.server, lv.concurrency): lv for lv in levels}
    lines = [
        "# dattavani serve vs whisper.cpp's whisper-server",
        "",
        f"Command: `{command}`",
        "",
        f"Model: `{model.name}` (the same file for both), {args.threads} CPU threads for each "
        f"server; dattavani serve with {args.workers} workers. Audio: jfk, 11 s, 16 kHz WAV; "
        f"{args.requests} requests per level after one untimed warm-up. "
        f"Machine: {os.cpu_count()} CPUs, shared with other jobs while this ran: 1-minute load "
        f"average {loads[0]:.1f} before and {loads[1]:.1f} after (figures are noisy; rerun on a "
        "quiet machine for publication).",
        "",
        "| concurrency | server | throughput (audio s/s) | p50 latency (s) | p95 latency (s) |",
        "|---:|---|---:|---:|---:|",
    ]
    for c in args.concurrency:
        for name in ("dattavani", "whisper-server"):
            lv = by[(name, c)]
            lines.append(f"| {c} | {name} | {lv.throughput:.2f} | {lv.p50:.2f} | {lv.p95:.2f} |")
    lines += ["", "| concurrency | throughput ratio (dattavani / whisper-server) | p95 ratio |"]
    lines.append("|---:|---:|---:|")
    for c in args.concurrency:
        ours, theirs = by[("dattavani", c)], by[("whisper-server", c)]
        lines.append(
            f"| {c} | {ours.throughput / theirs.throughput:.2f}x | {ours.p95 / theirs.p95:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="dattavani serve's workers")
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--requests", type=int, default=16, help="timed requests per level")
    parser.add_argument("--output", type=Path, help="write the Markdown table (and .json) here")
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]

    from dattavani.models import resolve_model
    from dattavani.transcriber import CPU_PRECISION

    model = resolve_model("tiny.en", default_precision=CPU_PRECISION).path
    audio_path = common.clip("jfk")
    audio = audio_path.read_bytes()
    import soundfile

    seconds = soundfile.info(audio_path).duration
    whisper_server = common.whisper_cpp_program("whisper-server")

    ours_port, theirs_port = free_port(), free_port()
    config = Path(tempfile.mkdtemp()) / "dattavani.toml"
    config.write_text(
        f"[server]\nthreads = {args.threads}\nworkers = {args.workers}\nmax_queue = 64\n"
        "access_log = false\n"
    )
    env = {**os.environ, "DATTAVANI_CONFIG": str(config)}
    ours = Server(
        "dattavani",
        f"http://127.0.0.1:{ours_port}/v1/audio/transcriptions",
        {"model": "whisper-1", "response_format": "json"},
    )
    theirs = Server(
        "whisper-server",
        f"http://127.0.0.1:{theirs_port}/inference",
        {"response_format": "json"},
    )
    ours_command = [
        str(Path(sys.executable).with_name("dattavani")), "serve", "--model", str(model),
        "--port", str(ours_port), "--preload",
    ]  # fmt: skip
    theirs_command = [
        str(whisper_server), "-m", str(model), "-t", str(args.threads),
        "--host", "127.0.0.1", "--port", str(theirs_port),
    ]  # fmt: skip
    levels: list[Level] = []
    load_before = os.getloadavg()[0]
    with (
        running(ours_command, f"http://127.0.0.1:{ours_port}/health", "dattavani serve", env),
        running(theirs_command, f"http://127.0.0.1:{theirs_port}/", "whisper-server", env),
    ):
        for i, concurrency in enumerate(args.concurrency):
            for server in [ours, theirs] if i % 2 == 0 else [theirs, ours]:
                body = multipart(server.fields, audio)
                level = run_level(server, body, seconds, concurrency, args.requests)
                print(
                    f"c={concurrency} {server.name}: {level.throughput:.2f} audio s/s, "
                    f"p50 {level.p50:.2f} s, p95 {level.p95:.2f} s",
                    file=sys.stderr,
                )
                levels.append(level)
    script = Path(sys.argv[0]).resolve().relative_to(common.REPO)
    command = " ".join(["python", str(script), *sys.argv[1:]])
    report = render(levels, args, model, command, (load_before, os.getloadavg()[0]))
    print(report)
    if args.output:
        args.output.write_text(report)
        args.output.with_suffix(".json").write_text(
            json.dumps([asdict(lv) | {"throughput": lv.throughput} for lv in levels], indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
