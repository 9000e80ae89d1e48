"""``dattavani serve`` on 127.0.0.1 (uvicorn in a thread), driven by OpenAI's own Python client.

Two servers share the module's loaded tiny.en: ``server``, as a user would run it (2 workers,
a queue of 6, a 4 MiB upload limit), and ``tight``, with 1 worker, no queue, an API key, a
1-second model TTL and room for one model, where the queue, the key and the unloading show.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import openai
import pytest
import soundfile
import srt
import webvtt

from dattavani.config import config_from_dict
from served import RunningServer, multipart

API_KEY = "test-key"


@pytest.fixture(scope="module")
def server(tiny_en_ggml: Path, test_device: str) -> RunningServer:
    config = config_from_dict(
        {
            "server": {
                "device": test_device,
                "workers": 2,
                "max_queue": 6,
                "max_upload_size": "4MiB",
                "access_log": True,
                "cors_origins": ["https://notes.example"],
            }
        }
    )
    with RunningServer(config, model=str(tiny_en_ggml)) as running:
        running.wait_ready()
        yield running


@pytest.fixture(scope="module")
def tight(tiny_en_ggml: Path, test_device: str) -> RunningServer:
    config = config_from_dict(
        {
            "native_models": {"models": {"tiny-again": {"model_id": str(tiny_en_ggml)}}},
            "server": {
                "device": test_device,
                "workers": 1,
                "max_queue": 0,
                "api_keys": [API_KEY],
                "model_ttl": 1,
                "max_loaded_models": 1,
            },
        }
    )
    with RunningServer(config, model=str(tiny_en_ggml), preload=False) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: RunningServer) -> openai.OpenAI:
    return server.client()


@pytest.fixture(scope="module")
def jfk_bytes(jfk_audio: Path) -> bytes:
    return jfk_audio.read_bytes()


@pytest.fixture(scope="module")
def long_wav(jfk_audio: Path) -> bytes:
    """jfk eight times over with a second of silence between: 96 s, several 30 s windows."""
    samples, rate = soundfile.read(jfk_audio, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    silence = np.zeros(rate, dtype=np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.concatenate([mono, silence] * 8), rate, format="WAV")
    return buffer.getvalue()


def _error(reply_body: object) -> dict[str, object]:
    """The ``error`` object of an OpenAI error body, checked for its four keys."""
    assert isinstance(reply_body, dict)
    error = reply_body.get("error", reply_body)
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    return error


# --- response formats ----------------------------------------------------------------------------


def test_json_and_text(client: openai.OpenAI, jfk_audio: Path, jfk_bytes: bytes) -> None:
    result = client.audio.transcriptions.create(model="whisper-1", file=(jfk_audio.name, jfk_bytes))
    assert result.text.startswith("And so my fellow Americans")
    text = client.audio.transcriptions.create(
        model="whisper-1", file=(jfk_audio.name, jfk_bytes), response_format="text"
    )
    assert text.strip() == result.text


def test_srt_and_vtt(client: openai.OpenAI, jfk_audio: Path, jfk_bytes: bytes) -> None:
    subtitles = client.audio.transcriptions.create(
        model="whisper-1", file=(jfk_audio.name, jfk_bytes), response_format="srt"
    )
    cues = list(srt.parse(subtitles))
    assert cues and cues[0].start.total_seconds() == 0.0
    assert "Americans" in " ".join(cue.content for cue in cues)
    assert cues[-1].end.total_seconds() <= 11.0

    captions = client.audio.transcriptions.create(
        model="whisper-1", file=(jfk_audio.name, jfk_bytes), response_format="vtt"
    )
    assert captions.startswith("WEBVTT")
    vtt = webvtt.from_buffer(io.StringIO(captions))
    assert [c.text for c in vtt] == [c.content for c in cues]


def test_verbose_json_with_words_and_segments(
    client: openai.OpenAI, jfk_audio: Path, jfk_bytes: bytes
) -> None:
    result = client.audio.transcriptions.create(
        model="whisper-1",
        file=(jfk_audio.name, jfk_bytes),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert result.task == "transcribe"
    assert result.language == "english"
    assert result.duration == pytest.approx(11.0, abs=0.05)
    assert result.text.startswith("And so my fellow Americans")
    assert result.segments and result.words
    for i, segment in enumerate(result.segments):
        assert segment.id == i
        assert 0 <= segment.start < segment.end <= result.duration
        assert segment.seek == int(segment.start * 100)
        assert segment.tokens and segment.temperature == 0.0
        assert segment.avg_logprob < 0 and segment.compression_ratio > 0
        assert 0 <= segment.no_speech_prob <= 1
    assert " ".join(s.text.strip() for s in result.segments) == result.text
    words = [w.word for w in result.words]
    assert words[:5] == ["And", "so", "my", "fellow", "Americans"]
    starts = [w.start for w in result.words]
    assert starts == sorted(starts)
    assert all(w.start <= w.end <= result.duration for w in result.words)


def test_verbose_json_words_only_and_default(
    client: openai.OpenAI, jfk_audio: Path, jfk_bytes: bytes
) -> None:
    words_only = client.audio.transcriptions.create(
        model="whisper-1",
        file=(jfk_audio.name, jfk_bytes),
        response_format="verbose_json",
        timestamp_granularities=["word"],
    )
    assert words_only.words and words_only.segments is None
    default = client.audio.transcriptions.create(
        model="whisper-1", file=(jfk_audio.name, jfk_bytes), response_format="verbose_json"
    )
    assert default.segments and default.words is None


def test_stream_events(client: openai.OpenAI, jfk_audio: Path, jfk_bytes: bytes) -> None:
    events = list(
        client.audio.transcriptions.create(
            model="whisper-1", file=(jfk_audio.name, jfk_bytes), stream=True
        )
    )
    types = [event.type for event in events]
    assert types[-1] == "transcript.text.done"
    assert set(types[:-1]) == {"transcript.text.delta"} and len(types) >= 2
    deltas = "".join(event.delta for event in events[:-1])
    assert deltas.strip() == events[-1].text
    assert events[-1].text.startswith("And so my fellow Americans")


# openai 3.x marks the translations endpoint deprecated; servers answering it are still its users.
@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
def test_translation(client: openai.OpenAI, jfk_audio: Path, jfk_bytes: bytes) -> None:
    """tiny.en is English-only: whisper.cpp gives no English-only model the translate token, so
    English speech comes back as English, as OpenAI answers English audio too."""
    result = client.audio.translations.create(
        model="whisper-1", file=(jfk_audio.name, jfk_bytes), response_format="verbose_json"
    )
    assert result.task == "translate"
    assert result.language == "english"
    assert result.text.startswith("And so my fellow Americans")
    plain = client.audio.translations.create(model="whisper-1", file=(jfk_audio.name, jfk_bytes))
    assert plain.text == result.text


# --- models ----------------------------------------------------------------------------------


def test_model_list(server: RunningServer, client: openai.OpenAI, tiny_en_ggml: Path) -> None:
    ids = [model.id for model in client.models.list()]
    assert ids[:2] == [str(tiny_en_ggml), "whisper-1"]
    model = client.models.retrieve("whisper-1")
    assert model.id == "whisper-1" and model.owned_by == "dattavani"
    with pytest.raises(openai.NotFoundError) as raised:
        client.models.retrieve("no-such-model")
    assert _error(raised.value.body)["code"] == "model_not_found"


def test_unknown_model_and_path_are_404(client: openai.OpenAI, jfk_bytes: bytes) -> None:
    for name in ("no-such-model", "/etc/passwd", "../models/x.bin"):
        with pytest.raises(openai.NotFoundError) as raised:
            client.audio.transcriptions.create(model=name, file=("jfk.flac", jfk_bytes))
        error = _error(raised.value.body)
        assert (error["param"], error["code"]) == ("model", "model_not_found")


# --- bad requests ----------------------------------------------------------------------------


def test_bad_audio_is_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.audio.transcriptions.create(
            model="whisper-1", file=("notes.wav", b"this is not audio at all" * 100)
        )
    error = _error(raised.value.body)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "file"
    assert "notes.wav" in str(error["message"])


def test_still_serving_after_every_bad_request(
    server: RunningServer, client: openai.OpenAI, jfk_bytes: bytes
) -> None:
    audio = ("jfk.flac", jfk_bytes)
    bad: list[tuple[str, bytes, str, int, str | None]] = []

    def case(
        fields: dict[str, str | list[str]],
        file: tuple[str, bytes] | None,
        status: int,
        param: str | None,
    ) -> None:
        body, content_type = multipart(fields, file)
        bad.append(("/v1/audio/transcriptions", body, content_type, status, param))

    case({"model": "whisper-1"}, ("empty.wav", b""), 400, "file")
    case({"model": "whisper-1"}, ("garbage.mp3", bytes(range(256)) * 40), 400, "file")
    case({"model": "whisper-1"}, None, 400, "file")
    case({}, audio, 400, "model")
    case({"model": "whisper-1", "response_format": "docx"}, audio, 400, "response_format")
    case({"model": "whisper-1", "temperature": "hot"}, audio, 400, "temperature")
    case({"model": "whisper-1", "temperature": "3"}, audio, 400, "temperature")
    case({"model": "whisper-1", "language": "klingon"}, audio, 400, "language")
    case({"model": "whisper-1", "stream": "maybe"}, audio, 400, "stream")
    for unstreamable in ("srt", "vtt", "verbose_json"):
        case(
            {"model": "whisper-1", "stream": "true", "response_format": unstreamable},
            audio,
            400,
            "response_format",
        )
    granularity = {"model": "whisper-1", "response_format": "verbose_json"}
    case({**granularity, "timestamp_granularities[]": "char"}, audio, 400, None)
    case({"model": "whisper-1", "timestamp_granularities[]": "word"}, audio, 400, None)
    case({"model": ["whisper-1", "tiny.en"]}, audio, 400, "model")
    case({"model": "C:\\models\\evil.bin"}, audio, 404, "model")
    bad.append(
        ("/v1/audio/transcriptions", b'{"model": "whisper-1"}', "application/json", 400, None)
    )
    bad.append(
        ("/v1/audio/transcriptions", b"--x\r\nbroken", "multipart/form-data; boundary=x", 400, None)
    )
    bad.append(("/v1/audio/speech", b"{}", "application/json", 404, None))

    for path, body, content_type, status, param in bad:
        reply = server.request(path, body, {"Content-Type": content_type})
        assert reply.status == status, (body[:200], reply.body)
        error = _error(reply.json())
        if param is not None:
            assert error["param"] == param, error
        assert server.get("/health").status == 200
    assert server.request("/v1/models", method="DELETE").status == 405

    result = client.audio.transcriptions.create(model="whisper-1", file=audio)
    assert result.text.startswith("And so my fellow Americans")


def test_upload_over_the_limit_is_413(server: RunningServer, client: openai.OpenAI) -> None:
    too_big = bytes(5 * 1024 * 1024)  # the fixture's limit is 4 MiB
    with pytest.raises(openai.APIStatusError) as raised:
        client.audio.transcriptions.create(model="whisper-1", file=("big.wav", too_big))
    assert raised.value.status_code == 413
    assert _error(raised.value.body)["code"] == "file_too_large"

    # Without a Content-Length (chunked), the limit is found while the body streams in.
    body, content_type = multipart({"model": "whisper-1"}, ("big.wav", too_big))
    chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
    host, port = server.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.request(
        "POST",
        "/v1/audio/transcriptions",
        chunks,
        {"Content-Type": content_type},
        encode_chunked=True,
    )
    response = connection.getresponse()
    assert response.status == 413
    assert _error(json.loads(response.read()))["code"] == "file_too_large"
    connection.close()
    assert server.get("/health").status == 200


# --- concurrency -----------------------------------------------------------------------------


def test_eight_concurrent_requests(
    server: RunningServer, client: openai.OpenAI, jfk_bytes: bytes
) -> None:
    before = server.metrics()

    def one(i: int) -> str:
        result = client.audio.transcriptions.create(
            model="whisper-1", file=(f"jfk-{i}.flac", jfk_bytes), response_format="verbose_json"
        )
        return result.text

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(one, range(8)))
    assert len(set(texts)) == 1 and texts[0].startswith("And so my fellow Americans")
    after = server.metrics()
    ok = 'dattavani_requests_total{endpoint="/v1/audio/transcriptions",status="200"}'
    assert after[ok] - before.get(ok, 0) == 8
    # All eight went through the 2 workers: each waited its turn in the queue once.
    waits = "dattavani_queue_wait_seconds_count"
    assert after[waits] - before[waits] == 8
    assert after["dattavani_audio_seconds_total"] - before["dattavani_audio_seconds_total"] == (
        pytest.approx(88.0, abs=0.5)
    )
    assert after["dattavani_requests_in_flight"] == 0


def test_queue_full_is_429_and_disconnect_cancels_the_decode(
    tight: RunningServer, long_wav: bytes
) -> None:
    client = tight.client(api_key=API_KEY)
    full = client.audio.transcriptions.create(
        model="whisper-1", file=("long.wav", long_wav), response_format="verbose_json"
    )
    assert full.segments is not None
    decoded_in_full = len(full.segments)
    assert full.text.count("Americans") == 8

    before = tight.metrics()
    stream = client.audio.transcriptions.create(
        model="whisper-1", file=("long.wav", long_wav), stream=True
    )
    first = next(iter(stream))
    assert first.type == "transcript.text.delta"

    # The one worker is busy and there is no queue: the next request is turned away at once.
    with pytest.raises(openai.RateLimitError) as raised:
        client.audio.transcriptions.create(model="whisper-1", file=("long.wav", long_wav))
    assert int(raised.value.response.headers["retry-after"]) >= 1
    assert _error(raised.value.body)["code"] == "queue_full"

    stream.close()  # the client goes away mid-decode
    after = tight.wait_for(
        lambda m: (
            m["dattavani_requests_cancelled_total"] > before["dattavani_requests_cancelled_total"]
            and m["dattavani_requests_in_flight"] == 0
        ),
        "the decode cancelled",
    )
    decoded = after["dattavani_segments_decoded_total"] - before["dattavani_segments_decoded_total"]
    assert 1 <= decoded < decoded_in_full
    assert after["dattavani_audio_seconds_total"] == before["dattavani_audio_seconds_total"]

    # The worker is free again.
    assert tight.metrics()["dattavani_requests_in_flight"] == 0


def test_disconnect_without_streaming_cancels_the_decode(
    tight: RunningServer, long_wav: bytes
) -> None:
    before = tight.metrics()
    body, content_type = multipart({"model": "whisper-1"}, ("long.wav", long_wav))
    host, port = tight.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {API_KEY}"}
    connection.request("POST", "/v1/audio/transcriptions", body, headers)
    segments = "dattavani_segments_decoded_total"
    tight.wait_for(lambda m: m[segments] > before[segments], "the decode started")
    connection.close()  # gone before the answer
    after = tight.wait_for(
        lambda m: (
            m["dattavani_requests_cancelled_total"] > before["dattavani_requests_cancelled_total"]
            and m["dattavani_requests_in_flight"] == 0
        ),
        "the decode cancelled",
    )
    assert after["dattavani_audio_seconds_total"] == before["dattavani_audio_seconds_total"]


# --- keys, models loaded, health ---------------------------------------------------------------


def test_api_key(tight: RunningServer, jfk_bytes: bytes) -> None:
    with pytest.raises(openai.AuthenticationError) as raised:
        tight.client(api_key="wrong-key").audio.transcriptions.create(
            model="whisper-1", file=("jfk.flac", jfk_bytes)
        )
    assert _error(raised.value.body)["code"] == "invalid_api_key"
    body, content_type = multipart({"model": "whisper-1"}, ("jfk.flac", jfk_bytes))
    for path, data, headers in (
        ("/v1/models", None, {}),
        ("/v1/audio/transcriptions", body, {"Content-Type": content_type}),
    ):
        reply = tight.request(path, data, headers)  # no Authorization header at all
        assert reply.status == 401 and _error(reply.json())["code"] == "invalid_api_key"
    assert tight.get("/health").status == 200  # health and metrics need no key
    assert tight.get("/metrics").status == 200
    assert [m.id for m in tight.client(api_key=API_KEY).models.list()][1] == "whisper-1"


def test_models_unload_for_room_and_after_their_ttl(
    tight: RunningServer, tiny_en_ggml: Path, jfk_bytes: bytes
) -> None:
    client = tight.client(api_key=API_KEY)
    client.audio.transcriptions.create(model="whisper-1", file=("jfk.flac", jfk_bytes))
    assert tight.get("/health").json()["loaded"] in ([str(tiny_en_ggml)], [])
    result = client.audio.transcriptions.create(model="tiny-again", file=("jfk.flac", jfk_bytes))
    assert result.text.startswith("And so my fellow Americans")
    # max_loaded_models = 1: the served model made room for the alias.
    assert tight.get("/health").json()["loaded"] in (["tiny-again"], [])
    tight.wait_for(lambda m: m["dattavani_models_loaded"] == 0, "the idle model unloaded")
    assert tight.get("/health").json()["loaded"] == []


def test_health_is_503_until_the_model_loads(tmp_path: Path) -> None:
    missing = tmp_path / "missing.bin"
    config = config_from_dict({"server": {"access_log": False}})
    with RunningServer(config, model=str(missing)) as running:
        deadline = time.monotonic() + 60
        while (reply := running.get("/health")).json()["status"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert reply.status == 503
        assert reply.json()["status"] == "error"
        assert str(missing) in reply.json()["error"]


def test_cors_origins_from_config(server: RunningServer) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    allowed = server.request(
        "/v1/audio/transcriptions",
        headers={"Origin": "https://notes.example", **preflight},
        method="OPTIONS",
    )
    assert allowed.status == 200
    assert allowed.headers["access-control-allow-origin"] == "https://notes.example"
    other = server.request(
        "/v1/audio/transcriptions",
        headers={"Origin": "https://evil.example", **preflight},
        method="OPTIONS",
    )
    assert "access-control-allow-origin" not in {k.lower() for k in other.headers}


def test_page_is_served(server: RunningServer) -> None:
    reply = server.get("/")
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/html")
    assert 'id="file"' in reply.text


def test_serve_without_the_extra_says_how_to_install(tmp_path: Path) -> None:
    # A module named fastapi that cannot be found: the command must name the extra, exit 2.
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('fastapi', 'uvicorn'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", "from dattavani.cli import main; raise SystemExit(main(['serve']))"],
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])
            ),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2, completed.stderr
    assert 'pip install "dattavani[server]"' in completed.stderr


def test_help_loads_neither_fastapi_nor_uvicorn() -> None:
    probe = (
        "import sys\n"
        "from dattavani.cli import main\n"
        "for argv in (['--help'], ['serve', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, (argv, e.code)\n"
        "heavy = ['fastapi', 'uvicorn', 'starlette', 'multipart', 'numpy']\n"
        "print('LOADED', [m for m in heavy if m in sys.modules])\n"
    )
    probed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert "LOADED []" in probed.stdout
    assert "--preload" in probed.stdout


def test_the_serve_command_answers_and_logs_each_request_as_json(
    tiny_en_ggml: Path, tmp_path: Path
) -> None:
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "dattavani.toml"
    config.write_text("[server]\nworkers = 1\n")
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from dattavani.cli import main; raise SystemExit(main())",
                "serve",
                "--config",
                str(config),
                "--model",
                str(tiny_en_ggml),
                "--port",
                str(port),
                "--preload",
            ],
            stderr=stderr,
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, log.read_text()
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health") as health:
                        assert health.status == 200
                        break
                except OSError:
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.1)
        finally:
            process.terminate()
            process.wait(timeout=60)
    lines = log.read_text().splitlines()
    assert f"on http://127.0.0.1:{port}" in lines[0]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records[-1]["path"] == "/health" and records[-1]["status"] == 200
    assert set(records[-1]) >= {"method", "status", "duration_s", "client", "model", "audio_s"}
