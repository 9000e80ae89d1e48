# Type stub of the native extension built from cpp/module.cpp.
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

WHISPER_CPP_VERSION: str
GPU_BACKEND: str
SAMPLE_RATE: int

class CancelToken:
    def __init__(self) -> None: ...
    def cancel(self) -> None: ...
    @property
    def cancelled(self) -> bool: ...

class FullParams:
    language: str
    translate: bool
    n_threads: int
    best_of: int
    beam_size: int
    patience: float
    temperature: float
    temperature_inc: float
    entropy_thold: float
    logprob_thold: float
    no_speech_thold: float
    length_penalty: float
    max_initial_ts: float
    initial_prompt: str
    prefix: str
    carry_initial_prompt: bool
    condition_on_previous_text: bool
    suppress_blank: bool
    suppress_non_speech_tokens: bool
    suppress_tokens: list[int]
    repetition_penalty: float
    no_repeat_ngram_size: int
    suppress_regex: str
    token_timestamps: bool
    no_timestamps: bool
    single_segment: bool
    max_len: int
    split_on_word: bool
    max_tokens: int
    offset_ms: int
    duration_ms: int
    audio_ctx: int
    n_max_text_ctx: int
    def __init__(self) -> None: ...
    def fallback_temperatures(self) -> list[float]: ...
    def validate(self) -> None: ...

class DecodedToken:
    id: int
    text: bytes
    probability: float
    logprob: float
    start: float
    end: float
    dtw_time: float

class DecodedSegment:
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    tokens: list[DecodedToken]

class FullResult:
    segments: list[DecodedSegment]
    language: str
    language_probability: float
    language_probs: list[tuple[str, float]]

class Model:
    path: str
    is_multilingual: bool
    type: str
    n_vocab: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int
    n_mels: int
    ftype: int
    weights_bytes: int
    file_bytes: int
    use_gpu: bool
    gpu_device: int
    flash_attn: bool
    dtw: bool
    max_states: int
    states_created: int
    def __init__(
        self,
        path: str,
        *,
        use_gpu: bool,
        gpu_device: int,
        flash_attn: bool,
        dtw: bool,
        max_states: int,
    ) -> None: ...
    def transcribe(
        self,
        audio: npt.NDArray[np.float32],
        params: FullParams,
        on_progress: Callable[[float], Any] | None = None,
        on_segment: Callable[[DecodedSegment], Any] | None = None,
        cancel: CancelToken | None = None,
    ) -> FullResult: ...
    def detect_language(
        self,
        audio: npt.NDArray[np.float32],
        n_threads: int = 4,
        offset_ms: int = 0,
        cancel: CancelToken | None = None,
    ) -> list[tuple[str, float]]: ...
    def tokenize(self, text: str) -> list[int]: ...

def log_mel_spectrogram(
    audio: npt.NDArray[np.float32],
    filters: npt.NDArray[np.float32],
    padding: int = 0,
    n_threads: int = 1,
) -> npt.NDArray[np.float32]: ...
def quantize_model(src_path: str, dst_path: str, type: str) -> None: ...
def inspect_model(path: str) -> dict[str, int]: ...
def compiled_backends() -> list[str]: ...
def list_devices() -> list[dict[str, Any]]: ...
def system_info() -> str: ...
def languages() -> list[tuple[str, str]]: ...
def flush_log() -> None: ...

class VadModel:
    def __init__(self, path: str, n_threads: int = 1, use_gpu: bool = False) -> None: ...
    def speech(
        self,
        audio: npt.NDArray[np.float32],
        threshold: float = 0.5,
        min_speech_duration_ms: int = 0,
        min_silence_duration_ms: int = 2000,
        max_speech_duration_s: float = 1e9,
        speech_pad_ms: int = 400,
    ) -> list[tuple[float, float]]: ...
