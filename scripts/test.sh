#!/usr/bin/env bash
# Installs what is missing, configures, builds and runs every test (the README's test command; .ci/run calls
# it). The CUDA backend is compiled whenever nvcc is found; its tests report "skipped" without a GPU. Debian's
# PyTorch is installed too when it can be, for the test that loads a checkpoint of `dino` in PyTorch (without
# it, or with DINO_TEST_TORCH=0, that test reports "skipped").
#   scripts/test.sh [ctest arguments, e.g. -L gradcheck]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${DINO_BUILD_DIR:-$root/build}
jobs=${DINO_JOBS:-$(nproc)}
"$root/scripts/install-deps.sh"
if [[ ${DINO_TEST_TORCH:-1} != 0 ]]; then
  "$root/scripts/install-deps.sh" --torch-test ||
    echo "test.sh: Debian's python3-torch could not be installed; the PyTorch checkpoint test will be skipped"
fi
# nvcc lives outside PATH on some setups.
if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then export PATH=/usr/local/cuda/bin:$PATH; fi
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DDINO_CUDA="${DINO_CUDA:-AUTO}"
cmake --build "$build" -j "$jobs"
cd "$build"
# Each test uses the 2 OpenMP threads itself, so tests run one at a time.
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} ctest --output-on-failure "$@"
