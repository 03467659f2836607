#!/usr/bin/env bash
# The data pipeline against torchvision, one core each: builds bench/data_bench, runs it and
# bench/torchvision_pipeline.py one after the other, and prints the table of docs/benchmarks.md.
#   bench/run_data.sh [-b BUILD_DIR] [-r REPEATS]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
build=$repo/build-bench
repeats=3
while (($#)); do
  case $1 in
    -b) build=$2; shift 2 ;;
    -r) repeats=$2; shift 2 ;;
    -h|--help) sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DDINO_CUDA=OFF >/dev/null
cmake --build "$build" --target data_bench -j"$(nproc)" >/dev/null
out=$build/bench-results
mkdir -p "$out"
# One thread for everything: OpenMP is not used by the loader, and torch is pinned to one thread.
OMP_NUM_THREADS=1 taskset -c 0 "$build/bench/data_bench" --benchmark_repetitions="$repeats" \
  --benchmark_format=json >"$out/data_bench.json"
taskset -c 0 /usr/bin/python3 "$here/torchvision_pipeline.py" --repeats "$repeats" >"$out/torchvision_pipeline.jsonl"
/usr/bin/python3 - "$out/data_bench.json" "$out/torchvision_pipeline.jsonl" <<'PY'
import json, statistics, sys
ours = {}
for b in json.load(open(sys.argv[1]))['benchmarks']:
    if b.get('run_type') == 'iteration':
        ours.setdefault(b['run_name'], []).append(b['images_per_s'])
theirs = {j['case']: j['images_per_s'] for j in map(json.loads, open(sys.argv[2]))}
pairs = [('BM_pipeline_fashion_2x28_4x28_per_crop_dino/real_time', 'fashion_2x28+4x28_per_crop_dino'),
         ('BM_pipeline_cifar_2x32_augs_hflip_padcrop/real_time', 'cifar_2x32_augs_hflip_padcrop')]
print('| pipeline | dino images/s (1 core) | torchvision images/s (1 core) | ratio |')
print('|---|---:|---:|---:|')
for o, t in pairs:
    a = statistics.median(ours[o]); b = theirs[t]
    print(f'| {t} | {a:.0f} | {b:.0f} | {a / b:.1f} |')
PY
