"""OpenAI's audio API on the wire: request fields, response bodies and error bodies.

Kept free of FastAPI so the shapes can be read (and checked) on their own; ``app.py`` turns them
into HTTP responses.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dattavani.errors import OptionsError
from dattavani.results import TranscriptionResult
from dattavani.writers import get_writer, whisper_json

RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
GRANULARITIES = ("word", "segment")
#: The formats of a streamed answer: its events carry the text alone (OpenAI allows these two).
STREAM_FORMATS = ("json", "text")
#: What each response format is sent as.
MEDIA_TYPES = {
    "json": "application/json",
    "verbose_json": "application/json",
    "text": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}


class APIError(Exception):
    """An error answered as ``{"error": {"message", "type", "param", "code"}}`` with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(
    message: str, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error object, as every error response carries it."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


@dataclass(frozen=True)
class AudioRequest:
    """The form fields of a transcription or translation request, checked."""

    model: str
    task: str
    language: str | None
    prompt: str | None
    response_format: str
    temperature: tuple[float, ...] | None
    granularities: tuple[str, ...]
    stream: bool

    def transcribe_options(self) -> dict[str, Any]:
        """Keyword arguments for :meth:`dattavani.Transcriber.transcribe`."""
        options: dict[str, Any] = {
            "task": self.task,
            "word_timestamps": "word" in self.granularities,
        }
        if self.language:
            options["language"] = self.language
        if self.prompt:
            options["initial_prompt"] = self.prompt
        if self.temperature is not None:
            options["temperature"] = self.temperature
        return options


def parse_audio_request(fields: Mapping[str, Sequence[str]], task: str) -> AudioRequest:
    """Check the form's text fields (``field -> values``); :class:`APIError` 400 names the bad one.

    ``temperature=0`` (OpenAI's default) means "start at 0 and raise it on failure", as OpenAI
    documents, so it keeps the fallback schedule; another value is used alone.
    """

    def one(name: str) -> str | None:
        values = fields.get(name) or ()
        if len(values) > 1:
            raise APIError(400, f"{name} was given {len(values)} times", param=name)
        return values[0].strip() if values and values[0].strip() else None

    model = one("model")
    if model is None:
        raise APIError(400, "model is required, e.g. whisper-1", param="model")
    response_format = (one("response_format") or "json").lower()
    if response_format not in RESPONSE_FORMATS:
        raise APIError(
            400,
            f"response_format {response_format!r} is not one of {', '.join(RESPONSE_FORMATS)}",
            param="response_format",
            code="invalid_value",
        )
    granularities: list[str] = []
    for name in ("timestamp_granularities[]", "timestamp_granularities"):
        for value in fields.get(name) or ():
            if value not in GRANULARITIES:
                raise APIError(
                    400,
                    f"timestamp_granularities {value!r} is not one of {', '.join(GRANULARITIES)}",
                    param="timestamp_granularities[]",
                    code="invalid_value",
                )
            if value not in granularities:
                granularities.append(value)
    if granularities and response_format != "verbose_json":
        raise APIError(
            400,
            "timestamp_granularities needs response_format verbose_json",
            param="timestamp_granularities[]",
        )
    stream = _boolean(one("stream"), "stream")
    if stream and response_format not in STREAM_FORMATS:
        # The events carry text alone; a subtitle or verbose_json body would be silently lost.
        raise APIError(
            400,
            f"stream=true sends transcript.text events: response_format must be "
            f"{' or '.join(STREAM_FORMATS)}, got {response_format!r}",
            param="response_format",
            code="invalid_value",
        )
    return AudioRequest(
        model=model,
        task=task,
        language=_language(one("language")) if task == "transcribe" else None,
        prompt=one("prompt"),
        response_format=response_format,
        temperature=_temperature(one("temperature")),
        granularities=tuple(granularities),
        stream=stream,
    )


def _language(value: str | None) -> str | None:
    if value is None:
        return None
    from ..languages import language_code

    try:
        return language_code(value)
    except OptionsError as error:
        raise APIError(400, str(error), param="language", code="invalid_value") from None


def _temperature(value: str | None) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        temperature = float(value)
    except ValueError:
        temperature = math.nan
    if not 0.0 <= temperature <= 1.0:
        raise APIError(
            400, f"temperature {value!r} is not a number from 0 to 1", param="temperature"
        )
    return None if temperature == 0.0 else (temperature,)


def _boolean(value: str | None, name: str) -> bool:
    if value is None:
        return False
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise APIError(400, f"{name} {value!r} is not true or false", param=name)


def language_name(code: str) -> str:
    """The language's full name as OpenAI writes it (``"en"`` -> ``"english"``)."""
    from dattavani import _core

    return next((str(name) for c, name in _core.languages() if c == code), code)


def render(result: TranscriptionResult, request: AudioRequest) -> tuple[str, str]:
    """The response body for ``request.response_format`` and its media type."""
    fmt = request.response_format
    if fmt == "json":
        body = json.dumps({"text": result.text.strip()}, ensure_ascii=False)
    elif fmt == "text":
        body = result.text.strip() + "\n"
    elif fmt == "verbose_json":
        body = json.dumps(verbose_json(result, request), ensure_ascii=False)
    else:
        body = get_writer(fmt).to_string(result)
    return body, MEDIA_TYPES[fmt]


def verbose_json(result: TranscriptionResult, request: AudioRequest) -> dict[str, Any]:
    """OpenAI's ``verbose_json``: segments unless only words were asked for, words when asked."""
    data: dict[str, Any] = {
        "task": request.task,
        "language": language_name(result.language),
        "duration": result.duration,
        "text": result.text.strip(),
    }
    segments = whisper_json(result)["segments"]
    if not request.granularities or "segment" in request.granularities:
        # OpenAI lists words once, beside the segments; whisper_json nests them in each segment.
        data["segments"] = [{k: v for k, v in s.items() if k != "words"} for s in segments]
    if "word" in request.granularities:
        data["words"] = [
            {"word": w["word"].strip(), "start": w["start"], "end": w["end"]}
            for s in segments
            for w in s.get("words", ())
        ]
    return data


def sse_event(data: Mapping[str, Any]) -> str:
    """One server-sent event carrying ``data`` as JSON."""
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"
