"""Reference transcripts and word comparison shared by the tests."""

from __future__ import annotations

import re

#: ../shared/audio/README.md: every engine gives these words for jfk (tiny.en drops the commas).
JFK_TEXT = (
    "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)

#: ../shared/audio/README.md: hotwords.mp3 (small models misspell "ComfyUI" without a prompt).
HOTWORDS_TEXT = "Then you go into your ComfyUI folder again, in the ComfyUI folder."


def words(text: str) -> list[str]:
    """Lower-cased words without punctuation: how transcripts are compared."""
    return re.findall(r"[a-z0-9']+", text.lower())


JFK_WORDS = words(JFK_TEXT)


def word_error_rate(reference: list[str], hypothesis: list[str]) -> float:
    """Levenshtein distance over words divided by the reference length."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i] + [0] * len(hypothesis)
        for j, hyp in enumerate(hypothesis, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp))
        previous = current
    return previous[-1] / max(len(reference), 1)
