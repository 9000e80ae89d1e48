"""The server's counters, in Prometheus' text exposition format (``GET /metrics``).

Written out by hand rather than with ``prometheus_client``: a dozen series do not need another
dependency. Counters are updated from the event loop and from decoding threads (segments), so
every update takes one lock.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from collections.abc import Sequence

#: Histogram buckets: real-time factor (processing time / audio time) and queue wait (seconds).
RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
WAIT_BUCKETS = (0.005, 0.05, 0.25, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Histogram:
    """A Prometheus histogram: cumulative ``_bucket`` counts, ``_sum`` and ``_count``."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value

    def lines(self, name: str) -> list[str]:
        out, total = [], 0
        for bound, count in zip((*self.buckets, None), self.counts, strict=True):
            total += count
            le = "+Inf" if bound is None else repr(bound)
            out.append(f'{name}_bucket{{le="{le}"}} {total}')
        out += [f"{name}_sum {self.sum!r}", f"{name}_count {total}"]
        return out


class Metrics:
    """Everything ``/metrics`` reports; the gauges (in flight, queued, loaded) are read live."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()  # (endpoint, status) -> count
        self.audio_seconds = 0.0
        self.processing_seconds = 0.0
        self.segments_decoded = 0
        self.cancelled = 0
        self.real_time_factor = Histogram(RTF_BUCKETS)
        self.queue_wait = Histogram(WAIT_BUCKETS)
        self.in_flight = 0
        self.queued = 0
        self.models_loaded = 0

    def request_done(self, endpoint: str, status: int) -> None:
        with self._lock:
            self.requests[(endpoint, status)] += 1

    def transcribed(self, audio_seconds: float, processing_seconds: float) -> None:
        with self._lock:
            self.audio_seconds += audio_seconds
            self.processing_seconds += processing_seconds
            if audio_seconds > 0:
                self.real_time_factor.observe(processing_seconds / audio_seconds)

    def waited(self, seconds: float) -> None:
        with self._lock:
            self.queue_wait.observe(seconds)

    def segment_decoded(self) -> None:
        with self._lock:
            self.segments_decoded += 1

    def decode_cancelled(self) -> None:
        with self._lock:
            self.cancelled += 1

    def render(self) -> str:
        """The text exposition format, version 0.0.4."""
        with self._lock:
            lines = [
                "# HELP dattavani_requests_total HTTP requests answered, by endpoint and status.",
                "# TYPE dattavani_requests_total counter",
            ]
            for (endpoint, status), count in sorted(self.requests.items()):
                lines.append(
                    f'dattavani_requests_total{{endpoint="{endpoint}",status="{status}"}} {count}'
                )
            scalar = (
                (
                    "audio_seconds_total",
                    "counter",
                    "Seconds of audio transcribed.",
                    self.audio_seconds,
                ),
                (
                    "processing_seconds_total",
                    "counter",
                    "Seconds spent decoding the transcribed audio.",
                    self.processing_seconds,
                ),
                (
                    "segments_decoded_total",
                    "counter",
                    "Segments decoded, including those of cancelled requests.",
                    self.segments_decoded,
                ),
                (
                    "requests_cancelled_total",
                    "counter",
                    "Decodes stopped because their client disconnected.",
                    self.cancelled,
                ),
                ("requests_in_flight", "gauge", "Requests decoding now.", self.in_flight),
                ("requests_queued", "gauge", "Requests waiting for a worker.", self.queued),
                ("models_loaded", "gauge", "Models loaded now.", self.models_loaded),
            )
            for name, kind, help_text, value in scalar:
                lines += [
                    f"# HELP dattavani_{name} {help_text}",
                    f"# TYPE dattavani_{name} {kind}",
                    f"dattavani_{name} {value!r}",
                ]
            lines += [
                "# HELP dattavani_real_time_factor Decoding time divided by audio duration.",
                "# TYPE dattavani_real_time_factor histogram",
                *self.real_time_factor.lines("dattavani_real_time_factor"),
                "# HELP dattavani_queue_wait_seconds Time a request waited for a worker.",
                "# TYPE dattavani_queue_wait_seconds histogram",
                *self.queue_wait.lines("dattavani_queue_wait_seconds"),
            ]
        return "\n".join(lines) + "\n"
