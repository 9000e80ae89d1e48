"""Word error rate: how far one transcript is from another, word by word.

``dattavani compare`` scores dattavani against a reference engine with it; the tests and the
benchmarks score transcripts against the known text of the sample speech with the same code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class WordErrors:
    """Word-level edit counts of a hypothesis against a reference."""

    substitutions: int
    deletions: int
    insertions: int
    reference_words: int

    @property
    def rate(self) -> float:
        """(S + D + I) / N; 0 for an empty reference with an empty hypothesis."""
        errors = self.substitutions + self.deletions + self.insertions
        return errors / self.reference_words if self.reference_words else float(errors > 0)


def normalized_words(text: str) -> list[str]:
    """Lower-cased words without punctuation: transcripts are compared word for word.

    >>> normalized_words("And so, my fellow Americans!")
    ['and', 'so', 'my', 'fellow', 'americans']
    """
    return re.findall(r"[\w']+", text.lower())


def word_errors(reference: Sequence[str], hypothesis: Sequence[str]) -> WordErrors:
    """Minimum word edits turning ``reference`` into ``hypothesis`` (Levenshtein), by kind.

    >>> word_errors("a b c".split(), "a x c d".split())
    WordErrors(substitutions=1, deletions=0, insertions=1, reference_words=3)
    """
    # Each cell: (total edits, substitutions, deletions, insertions) of the best alignment.
    previous = [(j, 0, 0, j) for j in range(len(hypothesis) + 1)]
    for i, ref in enumerate(reference, 1):
        current = [(i, 0, i, 0)]
        for j, hyp in enumerate(hypothesis, 1):
            diagonal = previous[j - 1]
            same = ref == hyp
            candidates = [
                (diagonal[0] + (not same), diagonal[1] + (not same), diagonal[2], diagonal[3]),
                (previous[j][0] + 1, previous[j][1], previous[j][2] + 1, previous[j][3]),
                (
                    current[j - 1][0] + 1,
                    current[j - 1][1],
                    current[j - 1][2],
                    current[j - 1][3] + 1,
                ),
            ]
            current.append(min(candidates))
        previous = current
    _, substitutions, deletions, insertions = previous[-1]
    return WordErrors(substitutions, deletions, insertions, len(reference))


def word_error_rate(reference: Sequence[str], hypothesis: Sequence[str]) -> float:
    """The WER of the words ``hypothesis`` against the words ``reference``.

    >>> word_error_rate(normalized_words("And so, my fellow Americans"), ["and", "so", "my"])
    0.4
    """
    return word_errors(reference, hypothesis).rate
