"""The build's backend switch (issue 6): a backend that cannot be built stops CMake when it
configures, with a message that says what is missing, never a silent CPU build.

Each test runs CMake's configure step on this source tree (seconds: it stops before anything is
compiled) with what the backend needs missing or too old.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cmake
import pybind11
import pytest

REPO = Path(__file__).resolve().parents[1]


def configure(build_dir: Path, *defines: str, env: dict[str, str] | None = None) -> str:
    """CMake's configure step with ``defines``; it must fail. Its output, lines joined (CMake
    wraps long messages)."""
    command = [
        str(Path(cmake.CMAKE_BIN_DIR) / "cmake"),
        "-S",
        str(REPO),
        "-B",
        str(build_dir),
        f"-DPython_EXECUTABLE={sys.executable}",
        f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
        *defines,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300
    )
    assert done.returncode != 0, done.stdout
    return " ".join((done.stdout + done.stderr).split())


def test_an_unknown_backend_stops_the_build(tmp_path: Path) -> None:
    output = configure(tmp_path, "-DDATTAVANI_GPU=tpu")
    assert "DATTAVANI_GPU=tpu is not one of cpu, cuda, metal, vulkan, openblas" in output


@pytest.mark.skipif(sys.platform == "darwin", reason="Metal builds on macOS")
def test_metal_off_macos_stops_the_build(tmp_path: Path) -> None:
    assert "DATTAVANI_GPU=metal needs macOS" in configure(tmp_path, "-DDATTAVANI_GPU=metal")


def test_cuda_without_a_compiler_stops_the_build(tmp_path: Path) -> None:
    output = configure(
        tmp_path, "-DDATTAVANI_GPU=cuda", env={"CUDACXX": str(tmp_path / "missing" / "nvcc")}
    )
    assert "DATTAVANI_GPU=cuda but no CUDA compiler (nvcc) was found" in output


def test_vulkan_headers_without_layer_settings_stop_the_build(tmp_path: Path) -> None:
    # Debian 12's headers (1.3.239) as far as the check reads them: ggml's Vulkan backend fails
    # to compile against them minutes into the build, so configuring must stop first.
    include = tmp_path / "vulkan-1.3.239" / "include"
    (include / "vulkan").mkdir(parents=True)
    (include / "vulkan" / "vulkan_core.h").write_text(
        "#define VK_HEADER_VERSION 239\n"
        "#define VK_HEADER_VERSION_COMPLETE VK_MAKE_API_VERSION(0, 1, 3, VK_HEADER_VERSION)\n"
    )
    loader = tmp_path / "libvulkan.so"
    loader.touch()
    output = configure(
        tmp_path / "build",
        "-DDATTAVANI_GPU=vulkan",
        f"-DVulkan_INCLUDE_DIR={include}",
        f"-DVulkan_LIBRARY={loader}",
        f"-DVulkan_GLSLC_EXECUTABLE={sys.executable}",
    )
    assert (
        f"needs Vulkan headers that define VK_EXT_layer_settings; those in {include} (1.3.239) "
        "do not" in output
    )
