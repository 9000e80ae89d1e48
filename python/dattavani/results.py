"""Results of a transcription: frozen dataclasses, as faster-whisper's, with a JSON round-trip.

Invariants (tested): segments are ordered and do not overlap; when words are present they lie
inside their segment, in order, and ``segment.text == "".join(w.word for w in segment.words)``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Word:
    """One word with its time span in seconds and the decoder's confidence in it.

    ``word`` keeps its leading space, as openai-whisper and faster-whisper do, so that joining the
    words of a segment gives back the segment's text.
    """

    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment:
    """A stretch of speech decoded in one piece.

    ``flags`` marks segments a reader should distrust rather than silently dropping them, e.g.
    ``"repetition"`` (a decoding loop), ``"high_compression_ratio"``, ``"low_logprob"``.
    ``language`` is the language it was decoded in: the call's, or with ``multilingual=True`` the
    one detected for its window.
    """

    id: int
    start: float
    end: float
    text: str
    tokens: tuple[int, ...]
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    words: tuple[Word, ...] | None = None
    flags: tuple[str, ...] = ()
    language: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        plain: dict[str, Any] = _plain(asdict(self))
        return plain

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Segment:
        words = data.get("words")
        return cls(
            id=int(data["id"]),
            start=float(data["start"]),
            end=float(data["end"]),
            text=str(data["text"]),
            tokens=tuple(int(t) for t in data.get("tokens", ())),
            avg_logprob=float(data["avg_logprob"]),
            no_speech_prob=float(data["no_speech_prob"]),
            compression_ratio=float(data["compression_ratio"]),
            words=None if words is None else tuple(Word(**w) for w in words),
            flags=tuple(data.get("flags", ())),
            language=data.get("language"),
        )


@dataclass(frozen=True)
class TranscriptionResult:
    """Everything one transcription produced.

    >>> result = Transcriber("tiny.en").transcribe("jfk.flac")   # doctest: +SKIP
    >>> result.text, result.language, round(result.real_time_factor, 3)   # doctest: +SKIP
    """

    text: str
    segments: tuple[Segment, ...]
    language: str
    language_probability: float
    duration: float
    processing_time: float
    model: str
    device: str = "cpu"
    all_language_probs: tuple[tuple[str, float], ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def real_time_factor(self) -> float:
        """Processing time divided by audio duration: 0.05 means 20x faster than real time."""
        return self.processing_time / self.duration if self.duration > 0 else 0.0

    @property
    def confidence(self) -> float:
        """Mean token probability over the whole transcript (exp of the token-weighted logprob)."""
        n = sum(len(s.tokens) for s in self.segments)
        if n == 0:
            return 0.0
        total = sum(s.avg_logprob * len(s.tokens) for s in self.segments)
        return math.exp(total / n)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, including the derived real_time_factor and confidence."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["segments"] = [s.to_dict() for s in self.segments]
        data["options"] = dict(self.options)
        data["real_time_factor"] = self.real_time_factor
        data["confidence"] = self.confidence
        plain: dict[str, Any] = _plain(data)
        return plain

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TranscriptionResult:
        return cls(
            text=str(data["text"]),
            segments=tuple(Segment.from_dict(s) for s in data["segments"]),
            language=str(data["language"]),
            language_probability=float(data["language_probability"]),
            duration=float(data["duration"]),
            processing_time=float(data["processing_time"]),
            model=str(data["model"]),
            device=str(data.get("device", "cpu")),
            all_language_probs=tuple(
                (str(lang), float(p)) for lang, p in data.get("all_language_probs", ())
            ),
            options=dict(data.get("options", {})),
        )

    @classmethod
    def from_json(cls, text: str) -> TranscriptionResult:
        return cls.from_dict(json.loads(text))


def _plain(value: Any) -> Any:
    """Tuples to lists and mappings to dicts, recursively, for json.dumps."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
