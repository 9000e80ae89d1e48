"""``dattavani info`` (alias ``doctor``): versions, backends, devices, the model cache and the
config in effect."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import EXIT_OK, format_size

if TYPE_CHECKING:
    from ..config import Config


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``dattavani info`` and its alias ``doctor``."""
    info = commands.add_parser(
        "info",
        aliases=["doctor"],
        parents=[common],
        help="show versions, backends, devices, the model cache and the config in effect",
    )
    info.add_argument("--json", action="store_true", help="print the report as JSON")
    info.set_defaults(command="info", handler=run_info)


def run_info(args: argparse.Namespace, config: Config) -> int:
    """``dattavani info``: what this installation has and would use."""
    import json
    import platform

    from .. import build_info
    from ..config import CONFIG_FILENAME, user_config_path
    from ..models.disk_cache import DiskCache

    info = build_info()
    info["cpu_features"] = cpu_features(info["system_info"])
    cache = DiskCache(config.native_models.cache_dir)
    info["cache"] = {
        "path": str(cache.root),
        "models": [entry.key for entry in cache.entries()],
        "bytes": cache.total_bytes(),
        "max_bytes": cache.max_bytes,
    }
    info["config_file"] = str(config.source) if config.source else None
    info["config_searched"] = [str(Path.cwd() / CONFIG_FILENAME), str(user_config_path())]
    info["env_overrides"] = list(config.env_overrides)
    info["python"] = f"{platform.python_version()} ({platform.system()} {platform.machine()})"
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    devices = [
        f"{d['name']}: {d['description']} ({d['type']}, {d['backend']} backend), "
        f"{format_size(d['memory_free'])} free of {format_size(d['memory_total'])}"
        for d in info["devices"]
    ]
    models = info["cache"]["models"]
    cache_line = (
        f"{cache.root}: {len(models)} model(s), {format_size(info['cache']['bytes'])}"
        + (f" ({', '.join(models)})" if models else "")
        + (f"; limit {format_size(cache.max_bytes)}" if cache.max_bytes else "")
    )
    config_line = (
        str(config.source)
        if config.source
        else "none, defaults in effect (looked for " + ", ".join(info["config_searched"]) + ")"
    )
    rows = [
        ("dattavani", info["version"]),
        ("whisper.cpp", info["whisper_cpp_version"]),
        ("GPU build", info["gpu_backend"]),
        ("backends", ", ".join(info["compiled_backends"])),
        ("CPU features", " ".join(info["cpu_features"]) or "none reported"),
        ("devices", "\n".join(devices) or "none"),
        ("model cache", cache_line),
        ("config file", config_line),
        ("env overrides", ", ".join(config.env_overrides) or "none"),
        ("python", info["python"]),
    ]
    for label, value in rows:
        print(f"{label:<14} " + value.replace("\n", "\n" + " " * 15))
    return EXIT_OK


def cpu_features(system_info: str) -> list[str]:
    """The CPU features whisper.cpp's system-info line reports as on.

    >>> cpu_features("WHISPER : COREML = 0 | CPU : SSE3 = 1 | AVX = 1 | AVX2 = 0 | ")
    ['SSE3', 'AVX']
    """
    section = ""
    features = []
    for part in system_info.split("|"):
        if ":" in part:
            section, part = (s.strip() for s in part.split(":", 1))
        name, _, value = part.partition("=")
        if section == "CPU" and value.strip() == "1":
            features.append(name.strip())
    return features
