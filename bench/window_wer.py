"""Word error rate of the long clip by window length: what each cut between windows costs (issue 4).

    python bench/window_wer.py --models tiny.en:f16,base:q8_0 --windows 600,360,300,180,120

Each window starts whisper.cpp without context, so shorter windows (less memory, see
bench/long_memory.py) risk more errors at the cuts. Default decoding options, 2 threads, the
bench's 306 s clip (the shared speech with 1.5 s pauses, bench/.work/long.wav).
"""

from __future__ import annotations

import argparse

from common import clip, ggml_model, reference_text
from dattavani.testing import word_error_rate, words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="tiny.en:f16,base:q8_0", help="name:precision, ...")
    parser.add_argument("--windows", default="600,360,300,180,120", help="window_seconds values")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from dattavani import Transcriber

    audio = str(clip("long"))
    reference = words(reference_text("long"))
    windows = [float(w) for w in args.windows.split(",")]
    print("| model | " + " | ".join(f"{w:.0f} s windows" for w in windows) + " |")
    print("|---|" + "---:|" * len(windows))
    for spec in args.models.split(","):
        name, precision = spec.split(":")
        path = ggml_model(name, precision)
        cells = []
        for window in windows:
            transcriber = Transcriber(path, threads=args.threads, window_seconds=window)
            text = transcriber.transcribe(audio).text
            cells.append(f"{100 * word_error_rate(reference, words(text)):.1f}%")
        print(f"| {name} {precision} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
