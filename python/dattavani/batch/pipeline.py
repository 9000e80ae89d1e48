"""The batch job: list the files, skip the done ones, transcribe the rest on Ray Data, append rows.

Resuming does not rely on Ray's own checkpointing (which switches itself off unless the plan is
Read -> map -> Write): before anything runs, the output folder's rows say which files are done,
so a rerun after a crash, an added file or a file changed in place does only what is missing.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DattavaniError, OptionsError
from .inputs import BatchFile, describe_files, expand_sources, longest_first
from .store import OutputStore

if TYPE_CHECKING:
    from ..results import TranscriptionResult

logger = logging.getLogger(__name__)

#: Options of ``Transcriber.transcribe`` that are not :class:`~dattavani.TranscribeOptions`.
_CALL_OPTIONS = ("vad_filter", "vad_parameters", "clip_timestamps")
#: Where ``output_formats`` go inside the output folder: readers of the Parquet dataset (pyarrow,
#: pandas, Spark) skip names that start with an underscore.
SIDECAR_FOLDER = "_transcripts"
#: Rows are written at least this often (seconds), however few there are, so a killed run loses
#: little.
FLUSH_SECONDS = 30.0


@dataclass
class WorkerStats:
    """What one actor did: files, seconds of audio, and the seconds its calls took."""

    files: int = 0
    audio_seconds: float = 0.0
    processing_seconds: float = 0.0

    @property
    def real_time_factor(self) -> float:
        """Processing time over audio time of this actor's calls (0.1: ten times real time)."""
        return self.processing_seconds / self.audio_seconds if self.audio_seconds else 0.0


@dataclass
class BatchSummary:
    """The outcome of :func:`transcribe_dataset`."""

    output: str
    transcribed: int = 0
    skipped: int = 0
    reused: int = 0
    failed: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    ray_startup_seconds: float = 0.0
    workers: dict[str, WorkerStats] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """1 when some file failed, else 0 (the command's exit code)."""
        return 1 if self.failed else 0

    def format(self) -> str:
        """The closing report: counts, audio hours, and each actor's real-time factor."""
        lines = [
            f"{self.transcribed} file(s) transcribed, {self.reused} reused from an identical "
            f"file, {self.skipped} skipped as already done, {self.failed} failed",
            f"{self.audio_seconds / 3600:.3f} h of audio in {self.wall_seconds:.1f} s "
            f"(Ray startup {self.ray_startup_seconds:.1f} s); rows in {self.output}",
        ]
        for name, stats in sorted(self.workers.items()):
            lines.append(
                f"  actor {name}: {stats.files} file(s), {stats.audio_seconds / 3600:.3f} h, "
                f"real-time factor {stats.real_time_factor:.3f}"
            )
        lines.extend(f"  failed: {path}: {error}" for path, error in self.failures)
        return "\n".join(lines)


@dataclass(frozen=True)
class PoolSettings:
    """How the actor pool is sized, and how long a file may take; None means "from the cluster's
    resources" (for the sizes) or "no limit"."""

    actors: int | None = None
    threads_per_actor: int | None = None
    states_per_actor: int | None = None
    gpus_per_actor: float = 1.0
    max_retries: int = 2
    file_timeout: float | None = None


def transcribe_dataset(
    inputs: str | Sequence[str],
    output: str | os.PathLike[str],
    model: str,
    *,
    address: str | None = None,
    device: str = "cpu",
    actors: int | None = None,
    threads_per_actor: int | None = None,
    states_per_actor: int | None = None,
    gpus_per_actor: float = 1.0,
    max_retries: int = 2,
    file_timeout: float | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    output_formats: Sequence[str] = (),
    rows_per_file: int = 100,
    progress: bool = False,
    **options: Any,
) -> BatchSummary:
    """Transcribe every file of ``inputs`` on Ray Data into one Parquet row each, in ``output``.

    ``inputs`` are folders (searched recursively), globs, files, text files of paths or URIs
    (``.txt``, ``.lst``, ``.list``), Parquet manifests (a ``path`` or ``uri`` column) and URIs
    (``s3://``, ``gs://``... through pyarrow's filesystems). ``output`` is a local folder or a
    URI. Files whose row is already there with the same fingerprint, model and options, and no
    error, are skipped; the rest run longest first in a pool of ``actors`` actors, each holding
    one model with ``states_per_actor`` decoder states and ``threads_per_actor`` CPUs. A file
    that fails becomes a row with its ``error``; a file whose worker process dies is tried
    ``max_retries`` more times, then recorded as failed; a file not transcribed within
    ``file_timeout`` seconds is stopped and recorded as failed (a later run tries it again).
    ``options`` are
    :meth:`dattavani.Transcriber.transcribe`'s (``language``, ``beam_size``, ``word_timestamps``,
    ``vad_filter``...). ``output_formats`` (``srt``, ``vtt``, ``json``...) are also written per
    file under ``output/_transcripts/`` (a local ``output`` only).

    Without ``address`` a local Ray is started for the job (or the one this process already
    joined is used); ``address="auto"`` or ``"ray://host:10001"`` joins a cluster.

    >>> from dattavani.batch import transcribe_dataset                      # doctest: +SKIP
    >>> summary = transcribe_dataset(["podcasts/"], "out/", "base.en")    # doctest: +SKIP
    >>> summary.transcribed, summary.failed                                 # doctest: +SKIP
    (1200, 3)
    """
    from .. import __version__

    started = time.perf_counter()
    output = os.fspath(output)
    if rows_per_file < 1:
        raise OptionsError(f"rows_per_file must be >= 1, got {rows_per_file}")
    if max_retries < 0:
        raise OptionsError(f"max_retries must be >= 0, got {max_retries}")
    if file_timeout is not None and not file_timeout > 0:
        raise OptionsError(f"file_timeout must be > 0 seconds, got {file_timeout}")
    formats = _check_formats(output, output_formats)
    options_hash = hash_options(options)
    pool = PoolSettings(
        actors, threads_per_actor, states_per_actor, gpus_per_actor, max_retries, file_timeout
    )
    _check_pool(pool)

    files = describe_files(expand_sources([inputs] if isinstance(inputs, str) else inputs))
    store = OutputStore(output)
    store.remove_temporaries()
    plan = _plan(store, files, model, options_hash)
    summary = BatchSummary(output=output, skipped=len(plan.skipped))
    identity = {"model": model, "options_hash": options_hash, "dattavani_version": __version__}
    writer = _RowWriter(store, rows_per_file)
    sidecars = Path(output) / SIDECAR_FOLDER if formats else None

    def record(file: BatchFile, row: dict[str, Any], result: TranscriptionResult | None) -> None:
        writer.add(row)
        if row["error"] is not None:
            summary.failed += 1
            summary.failures.append((file.path, row["error"]))
        if sidecars is not None and result is not None:
            _write_sidecars(result, file, sidecars, formats)

    for file, source_row in plan.copies:  # identical content already transcribed in an earlier run
        record(file, _copied_row(source_row, file), None)
        summary.reused += 1
    try:
        if plan.todo:
            if address is None:
                _fetch_model(model, device, cache_dir)
            _run_on_ray(
                plan, summary, identity, pool, address, device, cache_dir, options, record, progress
            )
    finally:
        writer.flush()
        summary.wall_seconds = time.perf_counter() - started
    return summary


@dataclass
class _Plan:
    """What a run does: files to transcribe (longest first), files that share their content
    (written from the same transcript), rows copied from earlier runs, and files skipped."""

    todo: list[BatchFile]
    twins: dict[str, list[BatchFile]]
    copies: list[tuple[BatchFile, dict[str, Any]]]
    skipped: list[BatchFile]


def _plan(store: OutputStore, files: list[BatchFile], model: str, options_hash: str) -> _Plan:
    """Decide what to do with each file, and remove the rows it replaces (one row per file)."""
    parts = store.read()
    latest: dict[str, dict[str, Any]] = {}
    part_of: dict[str, str] = {}
    for path, rows in parts:  # part files in name order; within an id the last finished wins
        for row in rows:
            kept = latest.get(row["id"])
            if kept is None or row["finished_at"] >= kept["finished_at"]:
                latest[row["id"]] = row
                part_of[row["id"]] = path

    def is_done(row: dict[str, Any] | None, file: BatchFile) -> bool:
        return (
            row is not None
            and row["error"] is None
            and row["fingerprint"] == file.fingerprint
            and row["model"] == model
            and row["options_hash"] == options_hash
        )

    done_by_content = {
        row["fingerprint"]: row
        for row in latest.values()
        if row["error"] is None and row["model"] == model and row["options_hash"] == options_hash
    }
    skipped, pending, copied = [], [], []
    for file in files:
        if is_done(latest.get(file.id), file):
            skipped.append(file)
        elif file.fingerprint in done_by_content:
            copied.append(file)
        else:
            pending.append(file)
    # The whole rows of the transcripts to copy (planning reads none), before any is removed.
    wanted: dict[str, set[str]] = defaultdict(set)
    for file in copied:
        source_id = done_by_content[file.fingerprint]["id"]
        wanted[part_of[source_id]].add(source_id)
    full = {row["id"]: row for path, ids in wanted.items() for row in store.read_rows(path, ids)}
    copies = [(file, full[done_by_content[file.fingerprint]["id"]]) for file in copied]
    redo = {file.id for file in pending} | {file.id for file in copied}
    for path, rows in parts:
        drop = {r["id"] for r in rows if r["id"] in redo or latest[r["id"]] is not r}
        if drop:
            store.remove_rows(path, drop, rows)

    twins: dict[str, list[BatchFile]] = defaultdict(list)
    todo = []
    for file in longest_first(pending):
        if file.fingerprint in twins:
            twins[file.fingerprint].append(file)
        else:
            twins[file.fingerprint] = []
            todo.append(file)
    return _Plan(todo, dict(twins), copies, skipped)


def _fetch_model(model: str, device: str, cache_dir: str | os.PathLike[str] | None) -> None:
    """Resolve the model here once before a local run: a wrong name fails at once (not in every
    actor), and a model to fetch or convert is made once, for the actors to load."""
    from ..models import resolve_model
    from ..transcriber import CPU_PRECISION

    resolve_model(
        model, cache_dir=cache_dir, default_precision=CPU_PRECISION if device == "cpu" else None
    )


def hash_options(options: Mapping[str, Any]) -> str:
    """A short hash of the transcription options in effect (defaults filled in), so that rows
    made with other options are told apart. Raises ``OptionsError`` for a bad option."""
    from ..options import TranscribeOptions

    decoding = {k: v for k, v in options.items() if k not in _CALL_OPTIONS}
    call = {k: options[k] for k in _CALL_OPTIONS if k in options}
    if isinstance(call.get("vad_parameters"), Mapping):
        call["vad_parameters"] = dict(call["vad_parameters"])
    state = {"options": TranscribeOptions.from_kwargs(**decoding).to_dict(), "call": call}
    text = json.dumps(state, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_formats(output: str, formats: Sequence[str]) -> list[str]:
    from ..writers import expand_formats
    from .inputs import is_uri

    if not formats:
        return []
    if is_uri(output):
        raise OptionsError(f"output formats are written to a local folder; {output} is a URI")
    return expand_formats(formats)


def _check_pool(pool: PoolSettings) -> None:
    for name in ("actors", "threads_per_actor", "states_per_actor"):
        value = getattr(pool, name)
        if value is not None and value < 1:
            raise OptionsError(f"{name} must be >= 1, got {value}")
    if pool.gpus_per_actor <= 0:
        raise OptionsError(f"gpus_per_actor must be > 0, got {pool.gpus_per_actor}")


def _run_on_ray(
    plan: _Plan,
    summary: BatchSummary,
    identity: dict[str, Any],
    pool: PoolSettings,
    address: str | None,
    device: str,
    cache_dir: str | os.PathLike[str] | None,
    options: dict[str, Any],
    record: Callable[[BatchFile, dict[str, Any], TranscriptionResult | None], None],
    progress: bool,
) -> None:
    from ..results import TranscriptionResult

    by_id = {file.id: file for file in plan.todo}
    unfinished = set(by_id)
    total_hours = sum(f.duration or 0.0 for files in _groups(plan) for f in files) / 3600
    with _ray_session(address, summary) as ray, _quiet_data_context(ray):
        # Built inside the quiet context: a dataset keeps the DataContext it was made under.
        dataset = _build_dataset(
            ray, identity["model"], plan.todo, pool, device, cache_dir, options
        )
        with _progress_bar(total_hours, progress) as advance, _job_errors():
            for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
                for produced in batch.to_pylist():
                    file = by_id[produced["id"]]
                    unfinished.discard(file.id)
                    result = None
                    if produced["error"] is None:
                        result = TranscriptionResult.from_json(produced["result_json"])
                        stats = summary.workers.setdefault(produced["worker"], WorkerStats())
                        stats.files += 1
                        stats.audio_seconds += result.duration
                        stats.processing_seconds += produced["processing_time"]
                    group = [file, *plan.twins[file.fingerprint]]
                    for same in group:
                        record(same, _row(same, identity, produced, result), result)
                    if result is not None:
                        summary.transcribed += 1
                        summary.reused += len(group) - 1
                        summary.audio_seconds += result.duration
                    advance(sum(f.duration or 0.0 for f in group) / 3600)
    died = (
        f"the worker process died while transcribing this file, {pool.max_retries + 1} "
        "time(s) (see Ray's logs: killed for memory, or a crash)"
    )
    for file_id in sorted(unfinished, key=lambda i: by_id[i].path):
        file = by_id[file_id]
        lost = {"id": file_id, "error": died, "worker": None, "processing_time": None}
        for same in [file, *plan.twins[file.fingerprint]]:
            record(same, _row(same, identity, lost, None), None)


@contextmanager
def _job_errors() -> Iterator[None]:
    """A failure of the Ray job itself (not of one file: those are rows) as a DattavaniError."""
    import ray.exceptions

    try:
        yield
    except ray.exceptions.RayError as error:
        raise DattavaniError(f"the Ray job failed: {error}") from error


def _groups(plan: _Plan) -> Iterator[list[BatchFile]]:
    for file in plan.todo:
        yield [file, *plan.twins[file.fingerprint]]


@contextmanager
def _ray_session(address: str | None, summary: BatchSummary) -> Iterator[Any]:
    """Ray, joined for the job: the connection this process already has, else ``address``,
    else a local Ray started here and stopped at the end."""
    import ray

    if ray.is_initialized():
        yield ray
        return
    started = time.perf_counter()
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            # Ray's own logs stay in its log files (dattavani -v shows them too).
            log_to_driver=logger.isEnabledFor(logging.INFO),
            logging_level=logging.INFO if logger.isEnabledFor(logging.INFO) else logging.ERROR,
        )
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise DattavaniError(f"cannot start or join {where}: {error}") from error
    summary.ray_startup_seconds = time.perf_counter() - started
    try:
        yield ray
    finally:
        ray.shutdown()


def _pool_shape(ray: Any, pool: PoolSettings, device: str) -> tuple[str, int, int, int, float]:
    """(device, actors, threads, states, GPUs) per actor, from the settings and the cluster."""
    resources = ray.cluster_resources()
    cpus = max(1, int(resources.get("CPU", 1)))
    gpus = float(resources.get("GPU", 0))
    if device == "auto":
        device = "auto" if gpus > 0 else "cpu"
    on_gpu = device != "cpu"
    if on_gpu and gpus <= 0:
        raise OptionsError(f"device {device}: the Ray cluster has no GPU resources")
    threads = pool.threads_per_actor or (4 if on_gpu else min(4, cpus))
    states = pool.states_per_actor or (4 if on_gpu else max(1, threads // 2))
    if pool.actors is not None:
        actors = pool.actors
    elif on_gpu:
        actors = max(1, int(gpus // pool.gpus_per_actor))
    else:
        actors = max(1, cpus // threads)
    return device, actors, threads, states, pool.gpus_per_actor if on_gpu else 0.0


def _build_dataset(
    ray: Any,
    model: str,
    todo: list[BatchFile],
    pool: PoolSettings,
    device: str,
    cache_dir: str | os.PathLike[str] | None,
    options: dict[str, Any],
) -> Any:
    import ray.data

    from .worker import TranscribeWorker

    device, actors, threads, states, gpus = _pool_shape(ray, pool, device)
    logger.info(
        "%d file(s) on %d actor(s) x %d thread(s), %d state(s) each, device %s",
        len(todo),
        actors,
        threads,
        states,
        device,
    )
    # One block per file: an actor that dies loses only that file's block, which is retried
    # max_retries times and then dropped (max_errored_blocks), and the driver records it.
    items = [{"id": file.id, "path": file.path} for file in todo]
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    strategy = ray.data.ActorPoolStrategy(
        min_size=1,
        max_size=actors,
        initial_size=actors,
        max_concurrent_calls_per_actor=states,
        max_tasks_in_flight_per_actor=states,
        enable_true_multi_threading=states > 1,
    )
    with warnings.catch_warnings():
        # Ray 2.60 deprecates passing max_restarts and max_task_retries this way without a
        # named replacement yet (hence the extra's upper bound).
        warnings.simplefilter("ignore", DeprecationWarning)
        return dataset.map_batches(
            TranscribeWorker,
            fn_constructor_kwargs={
                "model": model,
                "device": device,
                "threads": threads,
                "states": states,
                "options": options,
                "cache_dir": None if cache_dir is None else os.fspath(cache_dir),
                "file_timeout": pool.file_timeout,
            },
            batch_size=1,
            batch_format="pyarrow",
            compute=strategy,
            num_cpus=threads,
            num_gpus=gpus,
            # Ray retries a crashed actor forever by default: bounded here, per file.
            max_restarts=-1,
            max_task_retries=pool.max_retries,
        )


def _row(
    file: BatchFile,
    identity: dict[str, Any],
    produced: dict[str, Any],
    result: TranscriptionResult | None,
) -> dict[str, Any]:
    """The Parquet row of ``file`` from what its actor returned."""
    row: dict[str, Any] = {
        "id": file.id,
        "path": file.path,
        "fingerprint": file.fingerprint,
        "text": None,
        "language": None,
        "language_probability": None,
        "duration": file.duration,
        "processing_time": produced["processing_time"],
        "segments": None,
        **identity,
        "error": produced["error"],
        "worker": produced["worker"],
        "finished_at": datetime.datetime.now(datetime.timezone.utc),
    }
    if result is not None:
        row.update(
            text=result.text,
            language=result.language,
            language_probability=result.language_probability,
            duration=result.duration,
            segments=[
                {
                    "start": s.start,
                    "end": s.end,
                    "text": s.text,
                    "words": None
                    if s.words is None
                    else [
                        {
                            "start": w.start,
                            "end": w.end,
                            "word": w.word,
                            "probability": w.probability,
                        }
                        for w in s.words
                    ],
                }
                for s in result.segments
            ],
        )
    return row


def _copied_row(source: dict[str, Any], file: BatchFile) -> dict[str, Any]:
    """A row of an identical file transcribed in an earlier run, for ``file``'s path (read with
    its segments, which planning leaves out)."""
    return dict(
        source, id=file.id, path=file.path, finished_at=datetime.datetime.now(datetime.timezone.utc)
    )


def _write_sidecars(
    result: TranscriptionResult, file: BatchFile, folder: Path, formats: list[str]
) -> None:
    """``<stem>-<id>.<format>`` per format; the id keeps files of one name in two folders apart."""
    from ..writers import write_result

    name = file.path.rstrip("/").rsplit("/", 1)[-1]
    stem, suffix = os.path.splitext(name)
    write_result(result, f"{stem}-{file.id[:8]}{suffix}", folder, formats, overwrite=True)


class _RowWriter:
    """Rows to the store, ``rows_per_file`` at a time or every FLUSH_SECONDS."""

    def __init__(self, store: OutputStore, rows_per_file: int) -> None:
        self.store = store
        self.rows_per_file = rows_per_file
        self.rows: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if (
            len(self.rows) >= self.rows_per_file
            or time.monotonic() - self.last_flush >= FLUSH_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.store.append(self.rows)
            self.rows = []
        self.last_flush = time.monotonic()


@contextmanager
def _progress_bar(total_hours: float, show: bool) -> Iterator[Callable[[float], None]]:
    """A bar in hours of audio on stderr (when ``show``); yields the function that advances it."""
    if not show:
        yield lambda hours: None
        return
    from tqdm import tqdm

    with tqdm(
        total=round(total_hours, 4),
        unit="h",
        desc="audio",
        file=sys.stderr,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.3f}/{total:.3f} h "
        "[{elapsed}<{remaining}]",
    ) as bar:
        yield lambda hours: bar.update(hours)


@contextmanager
def _quiet_data_context(ray: Any) -> Iterator[None]:
    """Ray Data set for this job, then put back: a failed file's block is dropped rather than
    failing the job (the driver records the file), and Ray's bars and console log stay off."""
    import ray.data

    context = ray.data.DataContext.get_current()
    saved = {
        "max_errored_blocks": context.max_errored_blocks,
        "enable_progress_bars": context.enable_progress_bars,
        "print_on_execution_start": context.print_on_execution_start,
    }
    context.max_errored_blocks = -1
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    console = [
        h for h in logging.getLogger("ray.data").handlers if type(h).__name__ == "PlainRayHandler"
    ]
    levels = [h.level for h in console]
    if not logger.isEnabledFor(logging.INFO):
        for handler in console:
            handler.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
        for handler, level in zip(console, levels, strict=True):
            handler.setLevel(level)
