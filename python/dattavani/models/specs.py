"""Model names as users write them: aliases, precisions, hub repositories and local paths.

A *spec* is one of:

* a local path: a GGML file, or a folder in Hugging Face transformers or CTranslate2 layout;
* an alias of an openai Whisper size (``tiny`` ... ``large-v3-turbo``, also ``turbo`` and
  ``large``) with an optional precision suffix: ``small.en-q5_0``, ``base-f32``;
* ``repo_id[:file][@revision]`` for anything on the hub: ``openai/whisper-small``,
  ``Systran/faster-whisper-base@main``, ``ggerganov/whisper.cpp:ggml-base.bin``;
* the name of an installed model package's entry point (see :mod:`dattavani.models.packages`).

>>> parse_spec("small.en-q5_0")
AliasSpec(name='small.en', precision='q5_0')
>>> parse_spec("openai/whisper-small@v1", precision="fp32")
RepoSpec(repo_id='openai/whisper-small', filename=None, revision='v1', precision='f32')
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from dattavani.errors import ModelNotFoundError

Precision = Literal["f32", "f16", "q8_0", "q5_0", "q5_1", "q4_0"]
#: Every precision a model can be stored in, widest first.
PRECISIONS: tuple[Precision, ...] = ("f32", "f16", "q8_0", "q5_0", "q5_1", "q4_0")
#: The precisions made by quantizing an f16 (or f32) model natively with ggml.
QUANTIZED: tuple[Precision, ...] = ("q8_0", "q5_0", "q5_1", "q4_0")
DEFAULT_PRECISION: Precision = "f16"
# How CTranslate2 and transformers users spell precisions; accepted as ours.
_PRECISION_SPELLINGS: dict[str, Precision] = {
    "fp32": "f32",
    "float32": "f32",
    "fp16": "f16",
    "float16": "f16",
    "int8": "q8_0",
}

#: The openai Whisper sizes that have an alias.
SIZES = (
    "tiny",
    "tiny.en",
    "base",
    "base.en",
    "small",
    "small.en",
    "medium",
    "medium.en",
    "large-v1",
    "large-v2",
    "large-v3",
    "large-v3-turbo",
)
#: Other names for a size: openai-whisper's ``large`` is large-v3, ``turbo`` is large-v3-turbo.
SYNONYMS = {"turbo": "large-v3-turbo", "large": "large-v3"}

# The files of ggerganov/whisper.cpp on the hub (its models/download-ggml-model.sh): every size
# at f16, and these quantized ones. Any other precision is quantized here from the f16 model.
GGML_REPO = "ggerganov/whisper.cpp"
_GGML_QUANTIZED_FILES = frozenset(
    {
        ("tiny", "q5_1"),
        ("tiny.en", "q5_1"),
        ("tiny", "q8_0"),
        ("base", "q5_1"),
        ("base.en", "q5_1"),
        ("base", "q8_0"),
        ("small", "q5_1"),
        ("small.en", "q5_1"),
        ("small", "q8_0"),
        ("medium", "q5_0"),
        ("medium.en", "q5_0"),
        ("medium", "q8_0"),
        ("large-v2", "q5_0"),
        ("large-v2", "q8_0"),
        ("large-v3", "q5_0"),
        ("large-v3-turbo", "q5_0"),
        ("large-v3-turbo", "q8_0"),
    }
)
# The original checkpoints (transformers safetensors) and faster-whisper's CTranslate2 copies.
_TRANSFORMERS_REPOS = {size: f"openai/whisper-{size}" for size in SIZES} | {
    "large-v1": "openai/whisper-large"
}
_CT2_REPOS = {size: f"Systran/faster-whisper-{size}" for size in SIZES} | {
    "large-v3-turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo"
}

_ALIAS_RE = re.compile(
    r"^(?P<name>" + "|".join(re.escape(n) for n in (*SIZES, *SYNONYMS)) + r")"
    r"(?:-(?P<precision>[a-z0-9_]+))?$"
)
# Hub repository ids are "owner/name" of letters, digits, '-', '_' and '.'.
_REPO_RE = re.compile(
    r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?::(?P<file>[^@]+))?(?:@(?P<revision>.+))?$"
)


@dataclass(frozen=True)
class AliasSpec:
    """An openai Whisper size by its alias, at a precision."""

    name: str
    precision: Precision

    @property
    def model_id(self) -> str:
        return self.name

    @property
    def cache_key(self) -> str:
        """The model's disk cache folder name: ``tiny.en-f16``."""
        return f"{self.name}-{self.precision}"


@dataclass(frozen=True)
class RepoSpec:
    """A hub repository, optionally one GGML file in it, at a revision.

    ``precision`` is ``None`` for a GGML file taken as it is.
    """

    repo_id: str
    filename: str | None
    revision: str
    precision: Precision | None

    @property
    def model_id(self) -> str:
        """``repo_id[:file]@revision``: what the model is, without its precision."""
        file_part = f":{self.filename}" if self.filename else ""
        return f"{self.repo_id}{file_part}@{self.revision}"

    @property
    def cache_key(self) -> str:
        """The model's disk cache folder name: ``openai--whisper-small@main-f16``."""
        return safe_name(self.model_id) + (f"-{self.precision}" if self.precision else "")


@dataclass(frozen=True)
class HubSource:
    """Where on the hub a model can come from: a GGML file as it is, or a repo to convert."""

    repo_id: str
    filename: str | None = None


def normalize_precision(precision: str) -> Precision:
    """``"fp16"`` -> ``"f16"``; raises :class:`ModelNotFoundError` for an unknown precision.

    >>> normalize_precision("FP16"), normalize_precision("q5_0")
    ('f16', 'q5_0')
    """
    spelled = precision.strip().lower()
    spelled = _PRECISION_SPELLINGS.get(spelled, spelled)
    for known in PRECISIONS:
        if spelled == known:
            return known
    raise ModelNotFoundError(
        f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}"
    )


def parse_alias(
    spec: str, precision: str | None = None, default: Precision = DEFAULT_PRECISION
) -> AliasSpec | None:
    """The alias ``spec`` names, or ``None``; at its suffix's precision, else ``precision``,
    else ``default``.

    A suffix and a different ``precision`` argument contradict each other and are refused.

    >>> parse_alias("base", default="q8_0"), parse_alias("base-f16", default="q8_0")
    (AliasSpec(name='base', precision='q8_0'), AliasSpec(name='base', precision='f16'))
    """
    match = _ALIAS_RE.match(spec.strip())
    if match is None:
        return None
    name = SYNONYMS.get(match["name"], match["name"])
    suffix = match["precision"]
    if suffix is not None and suffix not in PRECISIONS:
        return None  # "tiny-q3" is no alias; the caller lists close matches
    wanted = normalize_precision(precision) if precision else None
    if suffix is not None and wanted is not None and suffix != wanted:
        raise ModelNotFoundError(
            f"{spec!r} asks for precision {suffix} but precision={precision!r} was also given"
        )
    chosen: Precision = normalize_precision(suffix) if suffix else (wanted or default)
    return AliasSpec(name, chosen)


def parse_repo(
    spec: str, precision: str | None = None, default: Precision = DEFAULT_PRECISION
) -> RepoSpec | None:
    """``repo_id[:file][@revision]`` as a :class:`RepoSpec`, or ``None`` if it is not one.

    A repository without ``:file`` is converted, to ``precision`` or else ``default``; a named
    file is taken as it is unless a ``precision`` is asked for.
    """
    match = _REPO_RE.match(spec.strip())
    if match is None:
        return None
    filename = match["file"]
    chosen: Precision | None = normalize_precision(precision) if precision else None
    if chosen is None and filename is None:
        chosen = default
    return RepoSpec(match["repo"], filename, match["revision"] or "main", chosen)


def parse_spec(spec: str, precision: str | None = None) -> AliasSpec | RepoSpec:
    """Parse an alias or a repository spec; raises :class:`ModelNotFoundError` for anything else.

    Local paths and entry-point names are not specs of this kind: the resolver checks those
    first (see :func:`dattavani.models.resolve_model`).
    """
    parsed = parse_alias(spec, precision) or parse_repo(spec, precision)
    if parsed is None:
        raise unknown_model_error(spec, ())
    return parsed


def alias_names() -> list[str]:
    """Every alias with and without a precision suffix: what close matches are drawn from."""
    names = [*SIZES, *SYNONYMS]
    return names + [f"{name}-{precision}" for name in names for precision in PRECISIONS]


def unknown_model_error(spec: str, other_names: Iterable[str]) -> ModelNotFoundError:
    """A :class:`ModelNotFoundError` for ``spec`` listing the closest known names."""
    candidates = [*alias_names(), *other_names]
    close = difflib.get_close_matches(spec.strip(), candidates, n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ModelNotFoundError(
        f"unknown model {spec!r}: not a file or folder, an alias ({', '.join(SIZES)}, "
        f"optionally with -{'/-'.join(PRECISIONS)}), a hub repo id (owner/name[:file][@revision]) "
        f"or an installed model package{hint}"
    )


def ggml_filename(name: str, precision: Precision) -> str | None:
    """The name of ``name``'s file at ``precision`` in ggerganov/whisper.cpp, if there is one.

    >>> ggml_filename("base.en", "f16"), ggml_filename("base.en", "q4_0")
    ('ggml-base.en.bin', None)
    """
    if precision == "f16":
        return f"ggml-{name}.bin"
    if (name, precision) in _GGML_QUANTIZED_FILES:
        return f"ggml-{name}-{precision}.bin"
    return None


def alias_hub_sources(alias: AliasSpec) -> list[HubSource]:
    """Where the hub has ``alias`` at its precision, cheapest first.

    whisper.cpp's own GGML file needs no conversion; the openai transformers checkpoint and the
    faster-whisper copy are converted. A quantized alias with no ready GGML file has no source of
    its own: it is quantized from the f16 model.
    """
    sources = []
    filename = ggml_filename(alias.name, alias.precision)
    if filename is not None:
        sources.append(HubSource(GGML_REPO, filename))
    if alias.precision in ("f16", "f32"):
        sources.append(HubSource(_TRANSFORMERS_REPOS[alias.name]))
        sources.append(HubSource(_CT2_REPOS[alias.name]))
    return sources


def safe_name(text: str) -> str:
    """``text`` as one portable file name: ``/`` and ``:`` become ``--``, odd characters ``_``.

    >>> safe_name("openai/whisper-small@refs/pr/1")
    'openai--whisper-small@refs--pr--1'
    """
    return re.sub(r"[^A-Za-z0-9._@+-]", "_", re.sub(r"[/:\\]", "--", text))
