"""What the tests and the benchmarks both need: the known text of the sample speech
(``../shared/audio/README.md``) and how transcripts are compared with it.

>>> JFK_WORDS[:4]
['and', 'so', 'my', 'fellow']
"""

from __future__ import annotations

from .word_errors import normalized_words as words
from .word_errors import word_error_rate

__all__ = ["HOTWORDS_TEXT", "JFK_TEXT", "JFK_WORDS", "word_error_rate", "words"]

#: Every engine gives these words for jfk (tiny.en drops the commas).
JFK_TEXT = (
    "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)

#: hotwords.mp3 (small models misspell "ComfyUI" without a prompt).
HOTWORDS_TEXT = "Then you go into your ComfyUI folder again, in the ComfyUI folder."

JFK_WORDS = words(JFK_TEXT)
