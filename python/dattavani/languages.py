"""Languages by code or by name: whisper.cpp's table, and openai-whisper's other names for them.

Every place that takes a language (``Transcriber.transcribe(language=)``, ``allowed_languages``,
the CLI's ``--language``, ``[transcribe] language``) goes through :func:`language_code`, so
``"English"``, ``"english"`` and ``"en"`` mean the same everywhere.
"""

from __future__ import annotations

from .errors import OptionsError

#: openai-whisper's ``TO_LANGUAGE_CODE`` accepts these names too (whisper.cpp's table has one
#: name per language).
LANGUAGE_ALIASES = {
    "burmese": "my",
    "valencian": "ca",
    "flemish": "nl",
    "haitian": "ht",
    "letzeburgesch": "lb",
    "pushto": "ps",
    "panjabi": "pa",
    "moldavian": "ro",
    "moldovan": "ro",
    "sinhalese": "si",
    "castilian": "es",
    "mandarin": "zh",
}


def language_code(language: str | None) -> str | None:
    """A language code from a code or an English name, as openai-whisper accepts both.

    ``None``, ``""`` and ``"auto"`` mean "detect it" and give ``None``. Anything else that names
    no language whisper knows raises :class:`~dattavani.errors.OptionsError`.

    >>> language_code("English"), language_code("en"), language_code("Castilian")
    ('en', 'en', 'es')
    >>> language_code(None), language_code("auto")
    (None, None)
    """
    if language is None or language.lower() in ("", "auto"):
        return None
    from . import _core

    wanted = language.strip().lower()
    wanted = LANGUAGE_ALIASES.get(wanted, wanted)
    for code, name in _core.languages():
        if wanted in (code, name):
            return str(code)
    raise OptionsError(
        f"unknown language {language!r}: use a code such as en, de or zh, or a name such as "
        "English (run 'python -c \"import dattavani._core as c; print(c.languages())\"' for all)"
    )
