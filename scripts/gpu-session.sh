#!/usr/bin/env bash
# The GPU checks of the CUDA path, staged to fit a lent GPU machine's
# ten-minute commands. That machine has nvcc, NVRTC and PyTorch but no
# flex, bison or CMocka and no package registry, so the tools travel as
# Debian packages (../shared/gpu/README.md).
#
#   scripts/gpu-session.sh prepare   here, with apt: fetch the .debs into .debs/
#                                    (git-ignored) with the unpacking script
#   scripts/gpu-session.sh test      there: build, the GPU and kernel-emulation
#                                    tests, then every ctest entry
#   scripts/gpu-session.sh bench     there: build, bench/gpu at every size, and
#                                    bench/flex_compare.py (FlexAttention, SDPA)
#
# "there" means run from the repository root with .debs carried along; logs
# and CSVs go to $OUT (the device tool's output folder) or ./gpu-out.
# Each stage builds from scratch, since each command may get a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=${1:-}
out=${OUT:-gpu-out}

build() {
    if [ ! -f .debs/env.sh ]; then
        echo "gpu-session: .debs/env.sh is missing: run 'scripts/gpu-session.sh prepare' on a" >&2
        echo "machine with apt, and carry .debs to this one" >&2
        exit 2
    fi
    # shellcheck disable=SC1091
    . .debs/env.sh .debs
    # FM_CAIRO AUTO: the GPU machines may lack cairo; fmviz's image tests
    # then report themselves skipped, which this stage does not need.
    cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DFM_CUDA=ON -DFM_CAIRO=AUTO >"$out/configure.log" 2>&1 ||
        { tail -40 "$out/configure.log"; exit 1; }
    cmake --build build-gpu -j"$(nproc)" >"$out/build.log" 2>&1 ||
        { grep -m20 -B2 -A6 "error" "$out/build.log"; exit 1; }
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.csv"
    else
        echo "gpu-session: no nvidia-smi on this machine; the GPU tests will say why they skip"
    fi
}

case "$stage" in
prepare)
    ../shared/gpu/fetch-debs.sh .debs
    # Not in the shared list: jansson (safetensors headers) and OpenSSL's
    # libcrypto headers (the JIT cache's HMAC); the GPU machines may have
    # the libcrypto runtime but not its headers.
    (cd .debs && apt-get download -qq libjansson-dev libjansson4 libssl-dev libssl3)
    cp ../shared/gpu/env.sh .debs/env.sh
    git check-ignore -q .debs || echo "gpu-session: add /.debs/ to .gitignore" >&2
    echo "gpu-session: carry .debs in the device run (carry: [\".debs\"])"
    ;;
test)
    mkdir -p "$out"
    build
    rc=0
    # test_gpu exits 77 (skipped) when the GPU is not usable: fail loudly
    # here instead, since this stage exists to run it.
    build-gpu/tests/test_gpu 2>&1 | tee "$out/test_gpu.log" || rc=$?
    if [ "$rc" -ne 0 ]; then echo "gpu-session: test_gpu exited $rc" >&2; fi
    build-gpu/tests/test_kernel_emu 2>&1 | tee "$out/test_kernel_emu.log" >/dev/null ||
        { echo "gpu-session: test_kernel_emu failed" >&2; rc=1; }
    ctest --test-dir build-gpu -j"$(nproc)" --output-on-failure 2>&1 | tee "$out/ctest.log" | tail -15 ||
        rc=1
    exit "$rc"
    ;;
bench)
    mkdir -p "$out"
    build
    build-gpu/bench/gpu 2>&1 | tee "$out/bench_gpu.txt"
    PYTHONUNBUFFERED=1 python3 bench/flex_compare.py --gpu-bench build-gpu/bench/gpu 2>&1 |
        tee "$out/flex_compare.txt"
    ;;
*)
    echo "usage: scripts/gpu-session.sh prepare|test|bench" >&2
    exit 2
    ;;
esac
