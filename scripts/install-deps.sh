#!/usr/bin/env bash
# Installs the Debian packages that building and testing dino needs, only those missing (idempotent).
#   scripts/install-deps.sh               build + test dependencies
#   scripts/install-deps.sh --torch-test  also Debian's PyTorch, for the test that loads a checkpoint in PyTorch
#   scripts/install-deps.sh --torch       also torchvision and hyperfine, for the fixture and benchmark scripts
set -euo pipefail
packages=(cmake g++ make ccache pkg-config
          libeigen3-dev doctest-dev libstb-dev nlohmann-json3-dev libcli11-dev zlib1g-dev
          libopenblas-dev libopenblas0-openmp libbenchmark-dev dataset-fashion-mnist)
for arg in "$@"; do
  case $arg in
    --torch-test) packages+=(python3-torch python3-numpy) ;;
    --torch) packages+=(python3-torch python3-numpy python3-torchvision hyperfine) ;;
    *) echo "install-deps.sh: unknown option '$arg' (allowed: --torch-test, --torch)" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
