"""Decoding options: openai-whisper's names and defaults, mapped onto whisper.cpp's parameters.

whisper.cpp's own defaults differ from openai-whisper's (English forced, no conditioning on the
previous window, progress printed to stderr, non-speech tokens allowed); ours follow
openai-whisper's ``transcribe()``, which is what users of every peer expect. ``docs/options.md``
lists each one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

from .errors import OptionsError

if TYPE_CHECKING:
    from . import _core

Task = Literal["transcribe", "translate"]

#: The range of whisper.cpp's ints, which every integer option must fit.
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1

#: openai-whisper's fallback schedule: start greedy at 0, raise by 0.2 when a window fails the
#: compression-ratio / log-probability checks.
DEFAULT_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class TranscribeOptions:
    """Every per-call option of :meth:`dattavani.Transcriber.transcribe`, validated.

    >>> TranscribeOptions(language="en", beam_size=5).beam_size
    5
    """

    language: str | None = None
    task: Task = "transcribe"
    beam_size: int | None = None
    best_of: int = 5
    patience: float | None = None
    length_penalty: float | None = None
    temperature: float | tuple[float, ...] = DEFAULT_TEMPERATURES
    compression_ratio_threshold: float | None = 2.4
    # whisper.cpp retries a window whose token entropy falls below this (a repetition loop) where
    # openai-whisper checks the gzip compression ratio; the ratio is still computed per segment and
    # flags suspect segments in the result.
    entropy_threshold: float | None = 2.4
    logprob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6
    condition_on_previous_text: bool = True
    initial_prompt: str | None = None
    # faster-whisper's and openai-whisper's prefix: the text the first 30 s window starts with
    # (forced tokens, part of the output), to continue a known transcript.
    prefix: str | None = None
    # faster-whisper's hotwords: words to favour, put in front of every window's prompt.
    hotwords: str | None = None
    # Detection picks the most likely of these languages (None: any language).
    allowed_languages: tuple[str, ...] | None = None
    # faster-whisper's: detection looks at up to language_detection_segments 30 s windows from
    # the start, until one's language is more probable than language_detection_threshold (else
    # the language most of them gave). With multilingual, each 30 s window is decoded in the
    # language detected for it.
    language_detection_segments: int = 1
    language_detection_threshold: float = 0.5
    multilingual: bool = False
    carry_initial_prompt: bool = False
    suppress_blank: bool = True
    suppress_non_speech_tokens: bool = True
    # faster-whisper's and openai-whisper's token ids never to emit; -1 stands for the non-speech
    # tokens. Given, it decides those too: [] suppresses nothing, [-1] is the default.
    suppress_tokens: tuple[int, ...] | None = None
    suppress_regex: str | None = None
    # faster-whisper's (CTranslate2's), over the tokens written in the current 30 s step: > 1
    # makes them less likely again; no n-gram of no_repeat_ngram_size tokens twice (0: off).
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    word_timestamps: bool = False
    # openai-whisper's: with word timestamps, punctuation merged into the word after / before it.
    prepend_punctuations: str = "\"'“¿([{-"
    append_punctuations: str = "\"'.。,，!！?？:：”)]}、"  # noqa: RUF001
    # With word timestamps: drop a segment that looks like a hallucination (openai-whisper's
    # score on its words) when silence longer than this many seconds surrounds it.
    hallucination_silence_threshold: float | None = None
    without_timestamps: bool = False
    max_initial_timestamp: float = 1.0
    max_segment_length: int = 0
    split_on_word: bool = False
    max_tokens_per_segment: int = 0
    offset: float = 0.0
    duration: float = 0.0
    audio_ctx: int = 0
    # faster-whisper's: skip non-speech with Silero VAD (transcribe()'s vad_parameters tune it).
    vad_filter: bool = False
    # faster-whisper's: [start, end, start, end, ...] seconds to transcribe, an odd last start
    # running to the end; "0,10,20,30" is taken too. None (or "0", or []) is the whole input.
    clip_timestamps: tuple[float, ...] | None = None
    # faster-whisper's BatchedInferencePipeline: speech packed into 30 s chunks, each decoded on
    # its own, up to this many at once (dattavani.batched). None: sequential.
    batch_size: int | None = None

    def __post_init__(self) -> None:
        self._check_types()
        self._normalize_languages()
        if self.task not in ("transcribe", "translate"):
            raise OptionsError(f"task must be 'transcribe' or 'translate', got {self.task!r}")
        # The decoder count's upper bound is whisper.cpp's (the native check, below).
        if self.beam_size is not None and self.beam_size < 1:
            raise OptionsError(f"beam_size must be None (greedy) or >= 1, got {self.beam_size}")
        if self.best_of < 1:
            raise OptionsError(f"best_of must be >= 1, got {self.best_of}")
        temperatures = self.temperatures
        if not temperatures or any(not 0.0 <= t <= 2.0 for t in temperatures):
            raise OptionsError(f"temperatures must be in [0, 2], got {self.temperature!r}")
        for name in ("compression_ratio_threshold", "entropy_threshold", "no_speech_threshold"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise OptionsError(f"{name} must be a finite number >= 0, got {value}")
        if self.no_speech_threshold is not None and self.no_speech_threshold > 1:
            raise OptionsError(f"no_speech_threshold must be <= 1, got {self.no_speech_threshold}")
        if self.suppress_tokens is not None and not (
            isinstance(self.suppress_tokens, tuple)
            and all(_is_token_id(t) for t in self.suppress_tokens)
        ):
            raise OptionsError(
                f"suppress_tokens must be token ids (or -1 for the non-speech tokens), "
                f"got {self.suppress_tokens!r}"
            )
        if not 0 < self.repetition_penalty < 1e6:
            raise OptionsError(
                f"repetition_penalty must be > 0 and below 10^6, got {self.repetition_penalty}"
            )
        for name in ("no_repeat_ngram_size", "max_segment_length", "max_tokens_per_segment"):
            if getattr(self, name) < 0:
                raise OptionsError(f"{name} must be >= 0, got {getattr(self, name)}")
        threshold = self.hallucination_silence_threshold
        if threshold is not None and threshold <= 0:
            raise OptionsError(f"hallucination_silence_threshold must be > 0, got {threshold}")
        if self.language_detection_segments < 1:
            raise OptionsError(
                f"language_detection_segments must be >= 1, got {self.language_detection_segments}"
            )
        if not 0 <= self.language_detection_threshold <= 1:
            raise OptionsError(
                "language_detection_threshold must be in [0, 1], got "
                f"{self.language_detection_threshold}"
            )
        if self.multilingual and self.language is not None:
            raise OptionsError(
                "multilingual=True detects the language of each window: give allowed_languages= "
                "to limit the choice, not language="
            )
        if self.patience is not None and self.patience <= 0:
            raise OptionsError(f"patience must be > 0, got {self.patience}")
        # Its upper bound, the 30 s window, is whisper.cpp's (the native check, below).
        if self.max_initial_timestamp < 0:
            raise OptionsError("max_initial_timestamp must be >= 0")
        if self.batch_size is not None and self.batch_size < 1:
            raise OptionsError(f"batch_size must be >= 1, got {self.batch_size}")
        # whisper.cpp takes them in milliseconds, as an int.
        if not (0 <= self.offset <= 1e6 and 0 <= self.duration <= 1e6):
            raise OptionsError("offset and duration must be in [0, 10^6] seconds")
        object.__setattr__(self, "clip_timestamps", _clip_times(self.clip_timestamps))
        self._check_native()

    def _check_types(self) -> None:
        """Wrong types and non-finite numbers become OptionsError, not a TypeError from the
        binding or a NaN that silently disables a check."""
        for f in fields(self):
            value = getattr(self, f.name)
            kind = _KINDS.get(f.name)
            if value is None or kind is None:
                continue
            if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise OptionsError(f"{f.name} must be an integer, got {value!r}")
            if kind is int and not _INT_MIN <= value <= _INT_MAX:
                raise OptionsError(f"{f.name} must fit in 32 bits, got {value}")
            if kind is float:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise OptionsError(f"{f.name} must be a number, got {value!r}")
                if not math.isfinite(value) and f.name != "logprob_threshold":
                    raise OptionsError(f"{f.name} must be finite, got {value!r}")
                if math.isnan(value):
                    raise OptionsError(f"{f.name} must be a number, got NaN")
            if kind is str and not isinstance(value, str):
                raise OptionsError(f"{f.name} must be a string, got {value!r}")
            if kind is bool and not isinstance(value, bool):
                raise OptionsError(f"{f.name} must be True or False, got {value!r}")

    def _normalize_languages(self) -> None:
        """Language names become codes (``"English"`` is ``"en"``), here, so every caller of the
        library takes what the command line takes; ``""`` and ``"auto"`` mean "detect"."""
        from .languages import language_code

        # frozen: __post_init__ is where a dataclass may still set its own fields.
        object.__setattr__(self, "language", language_code(self.language))
        if self.allowed_languages is not None:
            codes = []
            for language in self.allowed_languages:
                code = language_code(language) if isinstance(language, str) else None
                if code is None:
                    raise OptionsError(
                        f"allowed_languages must be language codes or names, got {language!r}"
                    )
                codes.append(code)
            object.__setattr__(self, "allowed_languages", tuple(codes))

    def _check_native(self) -> None:
        """The rules whisper.cpp owns (``dattavani._core.FullParams.validate``: its decoder count,
        language codes, ``suppress_regex`` as std::regex, ``audio_ctx``, and what would crash
        it), run here so that a bad option fails when the options are made; and that whisper.cpp
        falls back through the temperatures given, not others."""
        native = self.to_native(threads=1)
        native.validate()
        given, runs = self.temperatures, native.fallback_temperatures()
        # A temperature's fifth decimal changes nothing; whisper.cpp's steps are float sums.
        if len(runs) != len(given) or any(
            abs(a - b) > 1e-4 for a, b in zip(runs, given, strict=True)
        ):
            raise OptionsError(
                f"temperature {self.temperature!r}: whisper.cpp falls back from the first "
                "temperature in equal steps up to 1.0, so it would decode at "
                f"{tuple(round(t, 4) for t in runs)}; give one temperature or such a schedule, "
                f"e.g. {DEFAULT_TEMPERATURES}"
            )

    @property
    def temperatures(self) -> tuple[float, ...]:
        """The fallback schedule as a tuple, whether one value or several were given."""
        if isinstance(self.temperature, (int, float)):
            return (float(self.temperature),)
        return tuple(float(t) for t in self.temperature)

    @property
    def clips(self) -> list[tuple[float, float | None]] | None:
        """``clip_timestamps`` as ``(start, end)`` spans (``end`` None: to the end of the input);
        None for the whole input."""
        times = self.clip_timestamps
        if times is None:
            return None
        return [
            (times[i], times[i + 1] if i + 1 < len(times) else None)
            for i in range(0, len(times), 2)
        ]

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Every option's name, in declaration order.

        >>> TranscribeOptions.field_names()[:3]
        ('language', 'task', 'beam_size')
        """
        return tuple(f.name for f in fields(cls))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> TranscribeOptions:
        """Build from keyword arguments, naming the unknown ones in the error.

        faster-whisper's names are taken where they differ (``log_prob_threshold``); those of its
        options dattavani does not have are named with the reason.
        """
        for theirs, ours in _ALIASES.items():
            if theirs in kwargs:
                if ours in kwargs:
                    raise OptionsError(f"give {ours} or {theirs} (faster-whisper's name), not both")
                kwargs[ours] = kwargs.pop(theirs)
        unsupported = sorted(set(kwargs) & set(_UNSUPPORTED))
        if unsupported:
            raise OptionsError(
                "; ".join(f"{name} is not supported: {_UNSUPPORTED[name]}" for name in unsupported)
            )
        known = set(cls.field_names())
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise OptionsError(
                f"unknown transcription option(s): {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        for name in ("temperature", "allowed_languages", "suppress_tokens", "clip_timestamps"):
            if isinstance(kwargs.get(name), Sequence) and not isinstance(kwargs[name], str):
                kwargs[name] = tuple(kwargs[name])
        return cls(**kwargs)

    def to_native(self, threads: int) -> _core.FullParams:
        """whisper.cpp's parameters for one call (``dattavani._core.Model.transcribe`` checks
        them again, with the language and prompt the call sets)."""
        from . import _core

        native = _core.FullParams()
        native.language = self.language or ""
        native.translate = self.task == "translate"
        native.n_threads = threads
        native.best_of = self.best_of
        native.beam_size = self.beam_size or 0
        native.patience = -1.0 if self.patience is None else self.patience
        native.length_penalty = -1.0 if self.length_penalty is None else self.length_penalty
        temperatures = self.temperatures
        native.temperature = temperatures[0]
        # whisper.cpp's fallback raises the temperature in equal steps up to 1.0; a schedule of one
        # value means no fallback. The step from the two ends: the second value alone may be
        # rounded (0.166667), and whisper.cpp's float sums would then pass 1.0 early.
        native.temperature_inc = (
            (temperatures[-1] - temperatures[0]) / (len(temperatures) - 1)
            if len(temperatures) > 1
            else 0.0
        )
        # No entropy is below 0: a threshold of 0 turns the repetition check off.
        native.entropy_thold = 0.0 if self.entropy_threshold is None else self.entropy_threshold
        native.logprob_thold = (
            -math.inf if self.logprob_threshold is None else self.logprob_threshold
        )
        native.no_speech_thold = (
            1.0 if self.no_speech_threshold is None else self.no_speech_threshold
        )
        native.condition_on_previous_text = self.condition_on_previous_text
        native.initial_prompt = self.initial_prompt or ""
        native.carry_initial_prompt = self.carry_initial_prompt
        native.suppress_blank = self.suppress_blank
        if self.suppress_tokens is None:
            native.suppress_non_speech_tokens = self.suppress_non_speech_tokens
        else:
            native.suppress_non_speech_tokens = -1 in self.suppress_tokens
            native.suppress_tokens = [t for t in self.suppress_tokens if t >= 0]
        native.suppress_regex = self.suppress_regex or ""
        native.repetition_penalty = self.repetition_penalty
        native.no_repeat_ngram_size = self.no_repeat_ngram_size
        native.token_timestamps = self.word_timestamps
        native.no_timestamps = self.without_timestamps
        native.max_initial_ts = self.max_initial_timestamp
        native.max_len = self.max_segment_length
        native.split_on_word = self.split_on_word
        native.max_tokens = self.max_tokens_per_segment
        native.offset_ms = round(self.offset * 1000)
        native.duration_ms = round(self.duration * 1000)
        native.audio_ctx = self.audio_ctx
        return native


#: faster-whisper's names for our options.
_ALIASES = {"log_prob_threshold": "logprob_threshold"}
#: faster-whisper's options dattavani does not have, and why.
_UNSUPPORTED = {
    "chunk_length": "whisper.cpp decodes 30 s windows, the length the models were trained on",
    "max_new_tokens": "whisper.cpp decodes at most half the text context (224 tokens) per 30 s; "
    "max_tokens_per_segment cuts segments",
    "prompt_reset_on_temperature": "whisper.cpp decodes without the previous text from a fallback "
    "temperature of 0.5 (faster-whisper's default), a cutoff it does not let be changed; "
    "condition_on_previous_text=False drops it everywhere",
    "log_progress": "pass on_progress=, a callback given each fraction done",
}


def _clip_times(value: object) -> tuple[float, ...] | None:
    """faster-whisper's ``clip_timestamps`` as checked times: start < end, spans in order."""
    if value is None or value == "0" or (isinstance(value, (list, tuple)) and not value):
        return None
    try:
        if isinstance(value, str):
            times = tuple(float(v) for v in value.split(","))
        elif isinstance(value, (list, tuple)):
            times = tuple(float(v) for v in value)
        else:
            raise ValueError(f"expected a list of seconds or a string, got {type(value).__name__}")
    except (TypeError, ValueError) as error:
        raise OptionsError(f"clip_timestamps {value!r}: {error}") from error
    previous_end = 0.0
    for i in range(0, len(times), 2):
        start, end = times[i], times[i + 1] if i + 1 < len(times) else math.inf
        if not (start >= 0 and end > start):
            raise OptionsError(f"clip_timestamps {value!r}: spans must be start < end")
        if i and start < previous_end:
            raise OptionsError(f"clip_timestamps {value!r}: spans must be in order")
        previous_end = end
    return times


def _is_token_id(value: object) -> bool:
    """A token id, or -1 for the non-speech tokens (a bool is not one)."""
    return isinstance(value, int) and not isinstance(value, bool) and -1 <= value <= _INT_MAX


def _scalar_kinds() -> dict[str, type]:
    """The type each scalar option must have, read from the dataclass's annotations (``int |
    None`` is ``int``); options of other shapes (the task's Literal, tuples) are checked by
    name in ``__post_init__``."""
    import types
    import typing

    kinds: dict[str, type] = {}
    hints = typing.get_type_hints(TranscribeOptions)
    for f in fields(TranscribeOptions):
        hint = hints[f.name]
        members = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        members = tuple(m for m in members if m is not type(None))
        if len(members) == 1 and members[0] in (bool, int, float, str):
            kinds[f.name] = members[0]
    return kinds


#: The type each scalar option must have (checked before anything reaches the native layer).
_KINDS: dict[str, type] = _scalar_kinds()
