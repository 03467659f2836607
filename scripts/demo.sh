#!/usr/bin/env bash
# The README's first command: installs what is missing, builds `dino`, trains DINO on Fashion-MNIST with
# configs/demo.json (convnet_32_2 with mlp_bn, 6 epochs: about 11 minutes on 2 cores once built), and prints
# the teacher's and the student's kNN and linear-probe accuracy next to the kNN accuracy of the raw pixels,
# and where the results are. Idempotent; extra arguments go to `dino` (e.g. scripts/demo.sh --n_epochs 1).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${DINO_BUILD_DIR:-$root/build}
"$root/scripts/install-deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DDINO_CUDA="${DINO_CUDA:-AUTO}" >/dev/null
cmake --build "$build" --target dino_cli -j "$(nproc)"
export DINO_RESULTS=${DINO_RESULTS:-$root/results}
dino=$build/examples/dino

echo "== raw pixels (the Flatten encoder, no training): the baseline"
baseline=$("$dino" --from_json "$root/configs/demo.json" --enc Flatten --n_epochs 0 --probing_epochs 0 \
             --hid_dims --out_dim 16 --l2bot_dim 16 | grep "student:")
echo "== DINO on Fashion-MNIST (configs/demo.json)"
"$dino" --from_json "$root/configs/demo.json" "$@" | tee "$build/demo.out"
echo
baseline=${baseline#  student: }
echo "raw-pixel baseline: ${baseline%%  linear*}"
