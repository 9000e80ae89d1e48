"""From a model spec to a GGML file on disk: :func:`resolve_model`.

The order, first match wins:

1. a local GGML file (used where it is), or a local folder in transformers or CTranslate2 layout
   (converted into the disk cache);
2. the disk cache (:mod:`dattavani.models.disk_cache`);
3. installed model packages (:mod:`dattavani.models.packages`);
4. the hub (:mod:`dattavani.models.hub`): whisper.cpp's GGML files as they are, transformers and
   CTranslate2 repos converted.

A quantized alias (``small-q5_0``) with no ready-made file is quantized from the f16 model, which
is resolved the same way (and so comes from the cache when it is there).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dattavani.convert import convert_checkpoint
from dattavani.convert.formats import (
    CheckpointFormat,
    checkpoint_format,
    files_to_fetch,
    folder_format,
)
from dattavani.convert.quantize import ggml_precision
from dattavani.errors import ConversionError, ModelLoadError, ModelNotFoundError
from dattavani.models import hub
from dattavani.models.disk_cache import CacheEntry, DiskCache, copy_or_link
from dattavani.models.packages import PackageModel, entry_point_names, find_packages, join_parts
from dattavani.models.specs import (
    DEFAULT_PRECISION,
    QUANTIZED,
    AliasSpec,
    HubSource,
    Precision,
    RepoSpec,
    alias_hub_sources,
    normalize_precision,
    parse_alias,
    parse_repo,
    safe_name,
    unknown_model_error,
)

logger = logging.getLogger(__name__)

Source = Literal["file", "cache", "package", "hub"]
# A spec ending so names a model file, never a hub repository.
_FILE_SUFFIXES = (".bin", ".pt", ".safetensors", ".gguf")


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to load: ``path`` is its GGML file.

    ``source`` says where it was found this time: ``"file"`` (a local path, or converted from
    one just now), ``"cache"``, ``"package"`` or ``"hub"``. ``metadata`` is the cache entry's
    ``metadata.json`` (source repo, revision, format, sha256, ...) when there is one.
    """

    path: Path
    model_id: str
    source: Source
    precision: Precision
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False)


def resolve_model(
    spec: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    progress: bool | None = None,
    precision: str | None = None,
    default_precision: str | None = None,
) -> ResolvedModel:
    """Find, download, convert and cache the model ``spec`` names; return its GGML file.

    ``spec`` is a path, an alias (``"base.en"``, ``"small-q5_0"``, ``"turbo"``), a hub repo
    (``"openai/whisper-small"``, ``"ggerganov/whisper.cpp:ggml-base.bin@main"``) or an installed
    model package's name. ``precision`` (``f32``, ``f16``, ``q8_0``, ``q5_0``, ``q5_1``,
    ``q4_0``; ``fp16``... accepted) asks for another precision than the spec's own.
    ``default_precision`` (f16 unless given) is what a model named without a precision, or
    converted from another format, is made at; a GGML file is used at its own.
    ``cache_dir`` overrides the disk cache folder; ``offline=True`` (or ``HF_HUB_OFFLINE=1``)
    never touches the network; ``progress`` shows download bars (default: on a terminal).

    >>> model = resolve_model("tiny.en")                               # doctest: +SKIP
    >>> model.path, model.source                                       # doctest: +SKIP
    (PosixPath('/home/me/.cache/dattavani/models/tiny.en-f16/ggml-tiny.en-f16.bin'), 'hub')

    Raises:
      ModelNotFoundError: nothing by that name, with close matches; or offline and not cached.
      DownloadError: the hub could not be reached or a download broke off.
      ConversionError: the checkpoint could not be converted.
      ModelLoadError: a local file is not a whisper GGML model.
    """
    default = normalize_precision(default_precision) if default_precision else DEFAULT_PRECISION
    resolver = Resolver(DiskCache(cache_dir), hub.HubSettings.from_env(offline), progress, default)
    return resolver.resolve(spec, precision)


class Resolver:
    """One resolution's settings: the disk cache, the hub settings, whether to show bars and the
    precision of what is named without one or converted."""

    def __init__(
        self,
        cache: DiskCache,
        settings: hub.HubSettings,
        progress: bool | None,
        default_precision: Precision = DEFAULT_PRECISION,
    ):
        self.cache = cache
        self.settings = settings
        self.progress = progress
        self.default_precision = default_precision

    def resolve(self, spec: str | os.PathLike[str], precision: str | None = None) -> ResolvedModel:
        """See :func:`resolve_model`."""
        text = os.fspath(spec)
        path = Path(text).expanduser()
        if path.exists():
            return self._local(path, normalize_precision(precision) if precision else None)
        if not isinstance(spec, str):
            raise ModelNotFoundError(f"{path}: no such file or folder")
        alias = parse_alias(text, precision, self.default_precision)
        if alias is not None:
            return self._alias(alias)
        if os.sep in text and ":" not in text and path.suffix in _FILE_SUFFIXES:
            raise ModelNotFoundError(f"{path}: no such file")  # a path, not "owner/name"
        repo = parse_repo(text, precision, self.default_precision)
        if repo is not None:
            return self._repo(repo)
        if text in entry_point_names():
            wanted = normalize_precision(precision) if precision else None
            return self._named(text, safe_name(text), wanted, (text,), ())
        if os.sep in text or "/" in text or path.suffix in _FILE_SUFFIXES:
            raise ModelNotFoundError(f"{path}: no such file or folder")
        raise unknown_model_error(text, entry_point_names())

    # -- the kinds of spec ------------------------------------------------------------------------

    def _local(self, path: Path, precision: Precision | None) -> ResolvedModel:
        model_id = str(path.resolve())
        source_format = checkpoint_format(path)
        if source_format == "ggml":
            have = ggml_precision(path)
            if precision is None or precision == have:
                return ResolvedModel(path, model_id, "file", have, {"precision": have})
        wanted = precision or self.default_precision
        files = sorted(path.iterdir()) if path.is_dir() else [path]
        key = f"local-{_fingerprint(files)}-{wanted}"
        fields = {"model_id": model_id, "source": "file", "source_format": source_format}
        with self.cache.lock(key):
            return self._make(
                key,
                "file",
                lambda target: convert_checkpoint(path, target, precision=wanted),
                {**fields, "precision": wanted},
            )

    def _alias(self, alias: AliasSpec) -> ResolvedModel:
        key = alias.cache_key
        names = (key, alias.name) if alias.precision == DEFAULT_PRECISION else (key,)
        if alias.precision not in QUANTIZED:
            return self._named(alias.name, key, alias.precision, names, alias_hub_sources(alias))
        # Quantizing the f16 model takes seconds and works offline: prefer it when the f16 model
        # is here already (cached or packaged); else whisper.cpp's own quantized file if any.
        base = AliasSpec(alias.name, DEFAULT_PRECISION)
        base_names = (base.cache_key, base.name)
        have_base = self.cache.lookup(base.cache_key) or find_packages(base_names)
        sources = [] if have_base else alias_hub_sources(alias)
        return self._named(alias.name, key, alias.precision, names, sources, base=base)

    def _repo(self, repo: RepoSpec) -> ResolvedModel:
        source = HubSource(repo.repo_id, repo.filename)
        names = (repo.model_id, repo.repo_id)
        return self._named(
            repo.model_id, repo.cache_key, repo.precision, names, [source], repo.revision
        )

    def _named(
        self,
        model_id: str,
        key: str,
        precision: Precision | None,
        package_names: Sequence[str],
        hub_sources: Sequence[HubSource],
        revision: str = "main",
        base: AliasSpec | None = None,
    ) -> ResolvedModel:
        """Cache, then installed packages, then each hub source, then quantizing ``base``."""
        entry = self.cache.lookup(key)
        if entry is not None:
            return _resolved(entry, "cache")
        with self.cache.lock(key):
            entry = self.cache.lookup(key)  # made by another process while we waited
            if entry is not None:
                return _resolved(entry, "cache")
            failures = []
            for package in find_packages(package_names):
                try:
                    return self._package(package, key, model_id, precision)
                except (ConversionError, ModelLoadError, ModelNotFoundError) as error:
                    logger.warning("installed model package unusable: %s", error)
                    failures.append(str(error))
            for source in hub_sources:
                try:
                    return self._hub(source, revision, key, model_id, precision)
                except ModelNotFoundError as error:
                    failures.append(str(error))
            if base is not None and precision is not None:
                return self._quantized(base, key, precision)
        reasons = "; ".join(failures) or "no installed package or hub source has it"
        raise ModelNotFoundError(f"model {model_id!r} ({precision or 'as is'}): {reasons}")

    # -- where a model comes from -----------------------------------------------------------------

    def _package(
        self, package: PackageModel, key: str, model_id: str, precision: Precision | None
    ) -> ResolvedModel:
        fields = {"model_id": model_id, "source": "package", "source_package": package.distribution}
        where = f"{package.path} (from {package.distribution})"
        source_format: CheckpointFormat
        if package.path.is_file():
            source_format = "ggml"
            have = ggml_precision(package.path)
            if precision is None or precision == have:
                return ResolvedModel(
                    package.path, model_id, "package", have, {**fields, "precision": have}
                )
        elif package.parts:
            # Split packages carry a CTranslate2 model.bin; the converter says what else is missing.
            source_format = "ctranslate2"
        else:
            source_format = folder_format([p.name for p in package.path.iterdir()], where)
        wanted = precision or self.default_precision

        def produce(target: Path) -> None:
            source = package.path
            if package.parts:
                source = target.parent / "joined"
                source.mkdir()
                for name in files_to_fetch(source_format, []):
                    if (package.path / name).is_file():
                        copy_or_link(package.path / name, source / name)
                join_parts(package.parts, source / "model.bin")
            try:
                convert_checkpoint(source, target, precision=wanted)
            except ConversionError as error:
                raise ConversionError(f"{where}: {error}") from error
            finally:
                if package.parts:
                    _remove_tree(source)

        fields = {**fields, "source_format": source_format, "precision": wanted}
        return self._make(key, "package", produce, fields)

    def _hub(
        self, source: HubSource, revision: str, key: str, model_id: str, precision: Precision | None
    ) -> ResolvedModel:
        download = hub.download(source, revision, self.settings, self.progress)
        fields: dict[str, Any] = {
            "model_id": model_id,
            "source": "hub",
            "source_repo": download.repo_id,
            "source_revision": download.revision,
            "source_commit": download.commit,
            "source_format": download.source_format,
        }
        if download.source_format == "ggml":
            fields["source_file"] = source.filename
            have = ggml_precision(download.path)
            wanted = precision or have

            def produce(target: Path) -> None:
                if wanted == have:
                    copy_or_link(download.path, target)
                else:
                    convert_checkpoint(download.path, target, precision=wanted)

            return self._make(key, "hub", produce, {**fields, "precision": wanted})
        wanted = precision or self.default_precision
        return self._make(
            key,
            "hub",
            lambda target: convert_checkpoint(download.path, target, precision=wanted),
            {**fields, "precision": wanted},
        )

    def _quantized(self, base: AliasSpec, key: str, precision: Precision) -> ResolvedModel:
        original = self._alias(base)
        fields = {
            **{k: v for k, v in original.metadata.items() if k.startswith("source")},
            "model_id": base.name,
            "quantized_from": str(original.path),
            "precision": precision,
        }
        return self._make(
            key,
            original.source,
            lambda target: convert_checkpoint(original.path, target, precision=precision),
            fields,
        )

    def _make(
        self,
        key: str,
        source: Source,
        write: Callable[[Path], object],
        fields: dict[str, Any],
    ) -> ResolvedModel:
        """The entry ``key`` if another process made it meanwhile, else a new one made by
        ``write(target)``. The caller holds ``key``'s lock.
        """
        entry = self.cache.lookup(key)
        if entry is not None:
            return _resolved(entry, "cache")

        def produce(target: Path) -> dict[str, Any]:
            started = time.perf_counter()
            write(target)
            logger.info("made %s in %.1f s", key, time.perf_counter() - started)
            return fields

        return _resolved(self.cache.store(key, produce, model=str(fields["model_id"])), source)


def _resolved(entry: CacheEntry, source: Source) -> ResolvedModel:
    metadata = entry.metadata
    return ResolvedModel(
        entry.path,
        str(metadata.get("model_id", entry.key)),
        source,
        normalize_precision(str(metadata["precision"])),
        metadata,
    )


def _fingerprint(paths: Sequence[Path]) -> str:
    """A short hash of where files are and their sizes and times: changes when they change."""
    digest = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
