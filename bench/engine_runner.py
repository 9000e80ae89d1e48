"""One engine, one job, in a process of its own; prints one JSON line. Run by bench/run.py.

    python bench/engine_runner.py transcribe dattavani MODEL --audio jfk.wav --threads 2 --beam 5
    python bench/engine_runner.py load faster-whisper MODEL --compute-type int8 --threads 2

``transcribe`` imports the engine, loads the model, transcribes the WAV once and reports
``import_s``, ``load_s``, ``transcribe_s``, ``audio_s`` and ``text``; ``--batch-size N``
transcribes batched (dattavani's ``batch_size``, faster-whisper's ``BatchedInferencePipeline``).
``load`` loads the model
once (``load_s``) and, for dattavani, makes a second Transcriber of it (``cached_load_s``: the
in-process model cache). Decoding is each engine's default but for what run.py makes equal:
language "en", the beam size (1: greedy), best_of 5 and the fallback temperatures 0 to 1 by 0.2.
openai-whisper's engine runs under the Python of the bench's openai-whisper environment.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

LANGUAGE = "en"
BEST_OF = 5


class Dattavani:
    def __init__(self, args: argparse.Namespace) -> None:
        from dattavani import Transcriber

        self.transcriber_class = Transcriber
        self.args = args

    def load(self) -> Any:
        return self.transcriber_class(
            self.args.model,
            device="cpu",
            threads=self.args.threads,
            flash_attn=self.args.flash_attn == "on",
        )

    def transcribe(self, model: Any, samples: np.ndarray, beam: int) -> str:
        batched = {} if self.args.batch_size is None else {"batch_size": self.args.batch_size}
        result = model.transcribe(
            samples,
            language=LANGUAGE,
            beam_size=beam if beam > 1 else None,
            best_of=BEST_OF,
            **batched,
        )
        return str(result.text)


class FasterWhisper:
    def __init__(self, args: argparse.Namespace) -> None:
        from faster_whisper import WhisperModel

        self.model_class = WhisperModel
        self.args = args

    def load(self) -> Any:
        return self.model_class(
            self.args.model,
            device="cpu",
            compute_type=self.args.compute_type,
            cpu_threads=self.args.threads,
            num_workers=1,
        )

    def transcribe(self, model: Any, samples: np.ndarray, beam: int) -> str:
        if self.args.batch_size is None:
            segments, _ = model.transcribe(
                samples, language=LANGUAGE, beam_size=beam, best_of=BEST_OF
            )
        else:
            from faster_whisper import BatchedInferencePipeline

            segments, _ = BatchedInferencePipeline(model).transcribe(
                samples,
                language=LANGUAGE,
                beam_size=beam,
                best_of=BEST_OF,
                batch_size=self.args.batch_size,
            )
        return "".join(s.text for s in segments)  # the segments are decoded as they are read


class OpenaiWhisper:
    def __init__(self, args: argparse.Namespace) -> None:
        import torch
        import whisper

        torch.set_num_threads(args.threads)
        self.whisper = whisper
        self.args = args

    def load(self) -> Any:
        return self.whisper.load_model(self.args.model, device="cpu")

    def transcribe(self, model: Any, samples: np.ndarray, beam: int) -> str:
        result = model.transcribe(
            samples,
            language=LANGUAGE,
            beam_size=beam if beam > 1 else None,
            best_of=BEST_OF,
            fp16=False,
            verbose=None,
        )
        return str(result["text"])


ENGINES = {"dattavani": Dattavani, "faster-whisper": FasterWhisper, "openai-whisper": OpenaiWhisper}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", choices=["transcribe", "load"])
    parser.add_argument("engine", choices=sorted(ENGINES))
    parser.add_argument("model", help="GGML file, CTranslate2 folder or openai .pt, per engine")
    parser.add_argument("--audio", help="16 kHz mono WAV (transcribe)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--beam", type=int, default=1, help="1: greedy")
    parser.add_argument("--compute-type", default="float32", help="faster-whisper's")
    parser.add_argument("--flash-attn", choices=["on", "off"], default="on", help="dattavani's")
    parser.add_argument("--batch-size", type=int, help="batched transcription (default: off)")
    args = parser.parse_args()

    began = time.perf_counter()
    engine = ENGINES[args.engine](args)
    report: dict[str, Any] = {"import_s": time.perf_counter() - began}
    began = time.perf_counter()
    model = engine.load()
    report["load_s"] = time.perf_counter() - began
    if args.job == "load":
        if args.engine == "dattavani":
            began = time.perf_counter()
            engine.load()  # the same model again: served by the in-process model cache
            report["cached_load_s"] = time.perf_counter() - began
    else:
        samples, rate = sf.read(args.audio, dtype="float32")
        if rate != 16000 or samples.ndim != 1:
            raise SystemExit(f"{args.audio}: not 16 kHz mono")
        began = time.perf_counter()
        report["text"] = engine.transcribe(model, samples, args.beam)
        report["transcribe_s"] = time.perf_counter() - began
        report["audio_s"] = len(samples) / rate
    report["in_process_s"] = time.perf_counter() - STARTED
    print(json.dumps(report))


if __name__ == "__main__":
    main()
