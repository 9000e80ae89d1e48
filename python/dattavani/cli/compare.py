"""``dattavani compare``: the A/B check for a gradual migration.

Runs dattavani and a reference engine (openai-whisper, or faster-whisper) on the same audio with the
same beam size, language and threads, then prints the word error rate of dattavani's transcript
against the reference's and how much faster or slower dattavani was. Model loading is not timed;
decoding the audio is, for both.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..languages import language_code
from ..word_errors import normalized_words, word_errors
from ._common import EXIT_OK, UsageError, format_duration, load_transcriber

if TYPE_CHECKING:
    from ..config import Config


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "compare",
        parents=[common],
        help="run dattavani and openai-whisper (or faster-whisper) on one file: WER and speed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("audio", help="the audio file both engines transcribe")
    p.add_argument("--reference", choices=tuple(_REFERENCE_RUNNERS), default="openai-whisper")
    p.add_argument("-m", "--model", help="dattavani's model (default: config default_model)")
    p.add_argument(
        "--reference-model",
        help="the reference's model name or path (default: the same name as --model)",
    )
    p.add_argument("-l", "--language", help="language code or name (default: detect)")
    p.add_argument("--beam-size", type=int, default=5, help="beam width for both (default 5)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda... for both engines")
    p.add_argument("--threads", type=int, help="CPU threads for both (default: up to 8)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(command="compare", handler=run_compare)


@dataclass(frozen=True)
class EngineRun:
    engine: str
    model: str
    text: str
    seconds: float


def run_compare(args: argparse.Namespace, config: Config) -> int:
    import importlib.metadata
    import json

    package = args.reference
    try:
        importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise UsageError(
            f"compare --reference {package} needs {package}, which is not installed: "
            f"pip install {package}"
        ) from None
    audio = Path(args.audio)
    if not audio.is_file():
        raise UsageError(f"{audio}: no such audio file")
    model_name = args.model or config.native_models.default_model
    reference_model = args.reference_model or model_name
    if args.reference_model is None and Path(model_name).exists():
        raise UsageError(
            f"--model {model_name} is a file the reference cannot load: name the reference's "
            "model with --reference-model"
        )
    from ..transcriber import default_threads

    threads = args.threads or default_threads()
    language = language_code(args.language)

    transcriber = load_transcriber(
        model_name, config, device=args.device, threads=threads, workers=1
    )
    started = time.perf_counter()
    ours = transcriber.transcribe(audio, language=language, beam_size=args.beam_size)
    mine = EngineRun("dattavani", model_name, ours.text, time.perf_counter() - started)

    run_reference = _REFERENCE_RUNNERS[package]
    theirs = run_reference(reference_model, audio, language, args.beam_size, args.device, threads)
    errors = word_errors(normalized_words(theirs.text), normalized_words(mine.text))
    ratio = theirs.seconds / mine.seconds if mine.seconds else 0.0
    if args.json:
        report = {
            "audio": str(audio),
            "duration": ours.duration,
            "dattavani": asdict(mine),
            "reference": asdict(theirs),
            "word_error_rate": errors.rate,
            "word_errors": asdict(errors),
            "speedup": ratio,
        }
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return EXIT_OK
    print(f"audio            {audio}, {format_duration(ours.duration)}")
    for run in (mine, theirs):
        speed = ours.duration / run.seconds if run.seconds else 0.0
        print(f"{run.engine:<16} {run.model}: {run.seconds:.2f} s ({speed:.1f}x real time)")
    faster = f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"
    print(f"speed            dattavani is {faster} than {theirs.engine}")
    print(
        f"word error rate  {errors.rate:.1%} of dattavani against {theirs.engine} "
        f"({errors.substitutions} substituted, {errors.deletions} deleted, "
        f"{errors.insertions} inserted of {errors.reference_words} words)"
    )
    return EXIT_OK


def _openai_whisper(
    model: str, audio: Path, language: str | None, beam_size: int, device: str, threads: int
) -> EngineRun:
    import torch
    import whisper

    torch.set_num_threads(threads)
    loaded = whisper.load_model(model, device=None if device == "auto" else device.split(":")[0])
    started = time.perf_counter()
    # fp16 only where the model runs on a GPU (on the CPU openai-whisper warns and uses fp32).
    result = loaded.transcribe(
        str(audio), language=language, beam_size=beam_size, fp16=loaded.device.type == "cuda"
    )
    return EngineRun("openai-whisper", model, str(result["text"]), time.perf_counter() - started)


def _faster_whisper(
    model: str, audio: Path, language: str | None, beam_size: int, device: str, threads: int
) -> EngineRun:
    from faster_whisper import WhisperModel

    loaded = WhisperModel(model, device=device.split(":")[0], cpu_threads=threads)
    started = time.perf_counter()
    segments, _ = loaded.transcribe(str(audio), language=language, beam_size=beam_size)
    text = "".join(segment.text for segment in segments)  # decoding happens while iterating
    return EngineRun("faster-whisper", model, text, time.perf_counter() - started)


_REFERENCE_RUNNERS: dict[str, Callable[..., EngineRun]] = {
    "openai-whisper": _openai_whisper,
    "faster-whisper": _faster_whisper,
}
