"""``dattavani models package NAME``: a cached model as a wheel, for sites that mirror PyPI only.

The wheel holds the GGML file and a module whose ``model()`` returns its path and metadata,
declared in the ``dattavani.models`` entry-point group; once installed, resolving the model's
name finds it (see :mod:`dattavani.models.packages`). Built with :mod:`zipfile` by the wheel
spec (PEP 427): no build backend is needed, and the model file is stored, not deflated.
"""

from __future__ import annotations

import base64
import hashlib
import os
import pprint
import re
import secrets
import zipfile
from pathlib import Path

from dattavani.errors import DattavaniError
from dattavani.models.packages import ENTRY_POINT_GROUP
from dattavani.models.resolve import ResolvedModel
from dattavani.models.specs import parse_alias

_CHUNK = 1 << 20


def entry_point_name(model: ResolvedModel) -> str:
    """The name the package registers: ``tiny.en-q5_0`` for an alias, else the model id."""
    alias = parse_alias(model.model_id)
    return f"{alias.name}-{model.precision}" if alias is not None else model.model_id


def build_model_wheel(
    model: ResolvedModel, out_dir: str | os.PathLike[str], *, version: str = "1.0.0"
) -> Path:
    """Write a wheel of ``model`` into ``out_dir``; returns its path.

    >>> build_model_wheel(resolve_model("tiny.en-q5_0"), "dist")        # doctest: +SKIP
    PosixPath('dist/dattavani_model_tiny_en_q5_0-1.0.0-py3-none-any.whl')
    """
    if not re.fullmatch(r"\d+(\.\d+)*", version):
        raise DattavaniError(f"package version {version!r}: expected numbers such as 1.0.0")
    name = entry_point_name(model)
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    module = f"dattavani_model_{slug}"
    dist_info = f"{module}-{version}.dist-info"
    model_file = model.path.name
    metadata = {
        "precision": model.precision,
        "model_id": model.model_id,
        **{k: v for k, v in model.metadata.items() if k.startswith("source") or k == "sha256"},
    }
    files: dict[str, bytes | Path] = {
        f"{module}/__init__.py": _module_source(name, model_file, metadata).encode(),
        f"{module}/{model_file}": model.path,
        f"{dist_info}/METADATA": (
            "Metadata-Version: 2.1\n"
            f"Name: {module.replace('_', '-')}\n"
            f"Version: {version}\n"
            f"Summary: Whisper model {name} as a GGML file for dattavani\n"
        ).encode(),
        f"{dist_info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: dattavani\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        f"{dist_info}/entry_points.txt": (
            f"[{ENTRY_POINT_GROUP}]\n{name} = {module}:model\n"
        ).encode(),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"{module}-{version}-py3-none-any.whl"
    temporary = out / f".{wheel.name}.{secrets.token_hex(4)}.tmp"
    try:
        with zipfile.ZipFile(temporary, "w") as archive:
            record = [_add(archive, arcname, data) for arcname, data in files.items()]
            record.append(f"{dist_info}/RECORD,,")
            archive.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
        os.replace(temporary, wheel)
    finally:
        temporary.unlink(missing_ok=True)
    return wheel


def _add(archive: zipfile.ZipFile, arcname: str, data: bytes | Path) -> str:
    """Store one file and return its RECORD line (urlsafe base64 sha256, size)."""
    digest = hashlib.sha256()
    size = 0
    if isinstance(data, bytes):
        archive.writestr(arcname, data, zipfile.ZIP_DEFLATED)
        digest.update(data)
        size = len(data)
    else:
        info = zipfile.ZipInfo(arcname)
        info.compress_type = zipfile.ZIP_STORED  # GGML weights do not compress
        with data.open("rb") as src, archive.open(info, "w", force_zip64=True) as dst:
            while chunk := src.read(_CHUNK):
                dst.write(chunk)
                digest.update(chunk)
                size += len(chunk)
    encoded = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={encoded},{size}"


def _module_source(name: str, model_file: str, metadata: dict[str, object]) -> str:
    return (
        f'"""Whisper model {name} for dattavani (built by `dattavani models package`)."""\n\n'
        "from pathlib import Path\n\n"
        f"METADATA = {pprint.pformat(metadata, indent=4)}\n\n\n"
        "def model():\n"
        '    """The GGML file and its metadata, for the dattavani.models entry point."""\n'
        f"    return Path(__file__).with_name({model_file!r}), METADATA\n"
    )
