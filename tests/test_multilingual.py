"""Languages with the multilingual base: language detection (``detect_language``, the result's
``language``, ``language_probability`` and ``all_language_probs``), ``allowed_languages``,
``task="translate"``, a language per window (``multilingual=True``), faster-whisper's
``language_detection_segments`` and ``language_detection_threshold``, and the language of empty
input.

Code-switched speech is built here from FLEURS test sentences in ../shared/speech (English, then
German, a second of silence between clips); nothing is committed. Transcripts are compared word
by word with the clips' references (lower case, punctuation aside).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import pytest

from dattavani import Segment, Transcriber, TranscriptionResult, load_audio
from dattavani.testing import JFK_WORDS, any_words, speech_manifest, word_error_rate, words
from test_cli import run

SHARED_SPEECH = Path(__file__).resolve().parents[1].parent / "shared" / "speech"
SAMPLE_RATE = 16000
GAP = np.zeros(SAMPLE_RATE, np.float32)

# The tests of speech in other languages; the rest run on jfk, which is always there.
needs_fleurs = pytest.mark.skipif(
    not (SHARED_SPEECH / "manifest.tsv").is_file(),
    reason="needs the FLEURS recordings of ../shared/speech (not part of the repository)",
)


def fleurs(name: str) -> tuple[np.ndarray, list[str]]:
    """A FLEURS clip (``"de-001"``) at 16 kHz and the words of its reference transcript."""
    path = f"fleurs/fleurs-{name}.ogg"
    for row in speech_manifest(SHARED_SPEECH):
        if row.path == path:
            return load_audio(SHARED_SPEECH / path), any_words(row.reference)
    raise FileNotFoundError(path)


@pytest.fixture(scope="module")
def transcriber(base_ggml: Path, test_device: str) -> Transcriber:
    return Transcriber(base_ggml, device=test_device, threads=2)


@pytest.fixture(scope="module")
def code_switched() -> tuple[np.ndarray, float, list[str], list[str]]:
    """23 s of English (two sentences), a second of silence, 11 s of German: the audio, where
    the German starts (s), and the English and German reference words."""
    (en_a, ref_a), (en_b, ref_b) = fleurs("en-000"), fleurs("en-005")
    de, ref_de = fleurs("de-001")
    english = np.concatenate([en_a, GAP, en_b])
    audio = np.concatenate([english, GAP, de])
    return audio, (len(english) + len(GAP)) / SAMPLE_RATE, ref_a + ref_b, ref_de


def split_at(result: TranscriptionResult, boundary: float) -> tuple[list[Segment], list[Segment]]:
    """The segments before and after ``boundary``, each wholly on one side (whisper may end a
    segment a little into the silence, or start one a little before the speech)."""
    before = [s for s in result.segments if s.end <= boundary + 0.5]
    after = [s for s in result.segments if s.start >= boundary - 1.5]
    assert before and after and len(before) + len(after) == len(result.segments), result.segments
    return before, after


def said(segments: list[Segment]) -> list[str]:
    return any_words("".join(s.text for s in segments))


def test_detect_language_ranks_every_language(transcriber: Transcriber, jfk: np.ndarray):
    probabilities = transcriber.detect_language(jfk)
    languages = [language for language, _ in probabilities]
    values = [p for _, p in probabilities]
    assert languages[0] == "en" and values[0] > 0.9
    assert len(set(languages)) == len(languages) == 100  # every language base knows, once
    assert values == sorted(values, reverse=True)
    assert sum(values) == pytest.approx(1.0, abs=1e-3)


def test_the_detected_language_and_its_probabilities_are_in_the_result(
    transcriber: Transcriber, jfk: np.ndarray
):
    result = transcriber.transcribe(jfk)
    assert (result.language, result.options["language"]) == ("en", None)
    assert result.all_language_probs[0] == ("en", result.language_probability)
    assert result.language_probability > 0.9
    assert dict(result.all_language_probs) == pytest.approx(dict(transcriber.detect_language(jfk)))
    assert words(result.text) == JFK_WORDS


def test_allowed_languages_limit_what_is_detected(transcriber: Transcriber, jfk: np.ndarray):
    """English is ruled out: the likelier of the two allowed languages is taken, however
    unlikely, and the speech is decoded in it (base turns jfk into French)."""
    probabilities = dict(transcriber.detect_language(jfk))
    likelier = max(("de", "fr"), key=probabilities.__getitem__)
    result = transcriber.transcribe(jfk, allowed_languages=["German", "fr"])
    assert result.options["allowed_languages"] == ("de", "fr")  # names become codes
    assert result.language == likelier
    assert result.language_probability == pytest.approx(probabilities[likelier])
    assert "en" in dict(result.all_language_probs)  # all of them are still reported
    assert len(set(words(result.text)) & set(JFK_WORDS)) < len(JFK_WORDS) / 2, result.text


@needs_fleurs
def test_translate_gives_english_for_german_speech(transcriber: Transcriber):
    german, reference = fleurs("de-001")
    transcribed = transcriber.transcribe(german, temperature=0.0)
    translated = transcriber.transcribe(german, temperature=0.0, task="translate")
    assert transcribed.language == translated.language == "de"
    assert translated.options["task"] == "translate"
    assert word_error_rate(reference, any_words(transcribed.text)) < 0.35, transcribed.text
    english = any_words(translated.text)
    # "selbst ein großer Dinosaurier wie der T-Rex": the German words are gone, English came.
    assert not {"wasser", "dinosaurier", "selbst", "großer"} & set(english), english
    assert "dinosaur" in english and {"the", "a"} & set(english), english


@needs_fleurs
def test_each_window_is_decoded_in_its_own_language(transcriber: Transcriber, code_switched):
    audio, boundary, english, german = code_switched
    result = transcriber.transcribe(audio, multilingual=True)
    assert result.language == "en"  # the result keeps the first language, as without
    before, after = split_at(result, boundary)
    assert {s.language for s in before} == {"en"} and {s.language for s in after} == {"de"}
    assert word_error_rate(english, said(before)) < 0.25, said(before)
    assert word_error_rate(german, said(after)) < 0.35, said(after)
    # The segments' languages survive the JSON round trip.
    assert TranscriptionResult.from_json(result.to_json()).segments == result.segments


@needs_fleurs
def test_without_multilingual_one_language_decodes_everything(
    transcriber: Transcriber, code_switched
):
    audio, boundary, english, german = code_switched
    result = transcriber.transcribe(audio)
    # As before: one language, detected on the first 30 s (which hold both), for every segment;
    # the speech in the other language comes out garbled or translated.
    assert {s.language for s in result.segments} == {result.language}
    assert result.language in ("en", "de")
    before, after = split_at(result, boundary)
    other, reference = (before, english) if result.language == "de" else (after, german)
    assert word_error_rate(reference, said(other)) > 0.6, (result.language, said(other))


@needs_fleurs
def test_language_detection_segments_looks_past_a_silent_window(transcriber: Transcriber):
    german, reference = fleurs("de-001")
    audio = np.concatenate([np.zeros(30 * SAMPLE_RATE, np.float32), german])
    # What is decoded over the silence (base writes a German phrase there, again and again) is
    # not what is tested: it is decoded once (no fallback), and the speech without its context.
    transcribe = functools.partial(
        transcriber.transcribe, audio, temperature=0.0, condition_on_previous_text=False
    )
    # One window (the default): the silent first 30 s decide, and no language is likely there.
    silent = transcribe()
    assert silent.language != "de" and silent.language_probability < 0.5
    # Two: the silent window is not confident enough (< 0.5), the German one is.
    result = transcribe(language_detection_segments=2)
    assert result.language == "de" and result.language_probability > 0.9
    assert {s.language for s in result.segments} == {"de"}
    speech = said([s for s in result.segments if s.end > 30.0])
    assert word_error_rate(reference, speech) < 0.35, speech
    # A threshold below the silent window's probability stops at it, as faster-whisper does.
    stopped = transcribe(language_detection_segments=2, language_detection_threshold=0.1)
    assert stopped.language == silent.language


def test_empty_input_has_no_language(transcriber: Transcriber, tmp_path: Path):
    import soundfile

    path = tmp_path / "none.wav"
    soundfile.write(path, np.zeros(0, np.int16), 16000)
    for source in (np.array([], np.float32), path):
        result = transcriber.transcribe(source, multilingual=True)
        assert (result.segments, result.duration) == ((), 0.0)
        assert (result.language, result.language_probability, result.all_language_probs) == (
            "",
            0.0,
            (),
        )
        assert transcriber.detect_language(source) == []


@needs_fleurs
def test_the_command_line_decodes_each_language(base_ggml: Path, code_switched, tmp_path: Path):
    import soundfile

    soundfile.write(tmp_path / "talk.wav", code_switched[0], SAMPLE_RATE)
    done = run(tmp_path, "transcribe", "--multilingual", "-m", base_ggml, "-f", "txt", "talk.wav")
    assert done.returncode == 0, done.stderr
    text = any_words((tmp_path / "talk.txt").read_text(encoding="utf-8"))
    assert "dinosaurier" in text and "hospital" in text, text


def test_multilingual_on_an_english_only_model_is_ignored_with_a_warning(
    tiny_en_ggml: Path, jfk_audio: Path, caplog: pytest.LogCaptureFixture
):
    english_only = Transcriber(tiny_en_ggml, threads=2)
    with caplog.at_level(logging.WARNING, logger="dattavani.transcriber"):
        result = english_only.transcribe(jfk_audio, multilingual=True)
    assert words(result.text) == JFK_WORDS
    assert {s.language for s in result.segments} == {"en"}
    assert "multilingual=True needs a multilingual model" in caplog.text
