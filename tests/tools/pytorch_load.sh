#!/usr/bin/env bash
# A checkpoint of the dino command loads into the testbed's PyTorch model with load_state_dict(strict=True)
# and computes the same forward as its tensors (tests/parity/make_step_fixtures.py check-load, with the model
# configuration of fixture case c01). Skipped (exit 77) where /usr/bin/python3 has no torch.
#   tests/tools/pytorch_load.sh <dino binary> <source dir> <work dir>
set -euo pipefail
dino=$1
src=$2
work=$3
/usr/bin/python3 -c "import torch" 2> /dev/null || { echo "no torch: skipped"; exit 77; }
rm -rf "$work" && mkdir -p "$work"
"$dino" --enc convnet_16_2 --hid_dims 64 64 --l2bot_dim 32 --out_dim 64 --mc 2x28+4x28 --n_samples 64 --bs_train 32 \
        --n_epochs 1 --validation_freq 0 --n_workers 0 --seed 1 --results_dir "$work" > "$work/out.txt" 2>&1
run=("$work"/DINO/*)
/usr/bin/python3 "$src/tests/parity/make_step_fixtures.py" check-load "${run[0]}/last.safetensors" \
                 "$src/tests/parity/fixtures/steps/c01_convnet16_2_defaults"
