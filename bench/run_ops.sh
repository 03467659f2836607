#!/usr/bin/env bash
# Side-by-side operator benchmarks: builds bench/*_bench.cpp, runs them and bench/torch_ops.py one after the
# other (never two at once on a 2-core machine), then prints the markdown table of docs/benchmarks.md.
#   bench/run_ops.sh [-b BUILD_DIR] [-o OUT_DIR] [-n ROUNDS] [-r REPS] [-t MIN_TIME_S] [-w MAX_WAIT_S]
#                    [--no-torch] [--no-dino]
# Defaults: BUILD_DIR <repo>/build-bench, OUT_DIR BUILD_DIR/bench-results; 3 rounds (processes) of each side,
# each with 3 repetitions of at least 0.5 s per benchmark.
# Before each run it waits (up to MAX_WAIT_S, default 600; 0: no wait) until other processes use less than
# QUIET cores (env, default 0.15), and it reports the cores they used during each run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
build=$repo/build-bench
out=
rounds=3
reps=3
min_time=0.5
max_wait=600
quiet=${QUIET:-0.15}
do_torch=1
do_dino=1
py=/usr/bin/python3

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case $1 in
    -b) build=$2; shift 2 ;;
    -o) out=$2; shift 2 ;;
    -n) rounds=$2; shift 2 ;;
    -r) reps=$2; shift 2 ;;
    -t) min_time=$2; shift 2 ;;
    -w) max_wait=$2; shift 2 ;;
    --no-torch) do_torch=0; shift ;;
    --no-dino) do_dino=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
build=$(mkdir -p "$build" && cd "$build" && pwd)
out=${out:-$build/bench-results}
mkdir -p "$out"
notes=$out/notes.md
: >"$notes"

if [[ ! -x $py ]]; then
  echo "error: $py not found (apt-get install python3)" >&2
  exit 2
fi

# --- load of other processes ---------------------------------------------------------------------------------
# OpenMP threads spin at barriers, so one foreign busy core can halve a 2-thread result: measure it.
# /proc/stat counts every process on the machine; `times` (a builtin, so no fork) our children's CPU time.
busy_ticks() { awk '/^cpu /{ print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
# Sets own_cpu; must not run in a subshell ($(...)), whose `times` would not see this shell's children.
children_cpu() {
  times >"$out/.times"
  own_cpu=$(awk 'NR == 2 { s = 0; for (i = 1; i <= 2; ++i) { split($i, a, "m"); sub("s", "", a[2]); s += a[1] * 60 + a[2] } print s }' "$out/.times")
}
now() { date +%s.%N; }
# foreign_cores B0 C0 T0 (busy ticks, our CPU seconds, time at the start): sets load, the cores used by others
# since then; called directly for the same reason.
foreign_cores() {
  local b1 t1
  b1=$(busy_ticks); t1=$(now); children_cpu
  load=$(awk -v b0="$1" -v c0="$2" -v t0="$3" -v b1="$b1" -v c1="$own_cpu" -v t1="$t1" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { f = ((b1 - b0) / hz - (c1 - c0)) / (t1 - t0); printf "%.2f", (f < 0 ? 0 : f) }')
}
wait_quiet() {
  local waited=0
  while :; do
    local b0 c0 t0
    b0=$(busy_ticks); children_cpu; c0=$own_cpu; t0=$(now)
    sleep 3
    foreign_cores "$b0" "$c0" "$t0"
    if awk -v l="$load" -v q="$quiet" 'BEGIN { exit !(l < q) }' || ((waited >= max_wait)); then break; fi
    ((waited == 0)) && echo "   waiting for a quiet machine (other processes use $load cores)" >&2
    sleep 12
    waited=$((waited + 15))
  done
  ((waited >= max_wait && max_wait > 0)) && echo "   still busy after ${max_wait}s ($load cores), running anyway" >&2
  return 0
}
# measured LABEL CMD...: runs CMD after waiting for quiet, records the foreign load in notes.md.
measured() {
  local label=$1 b0 c0 t0 rc=0
  shift
  wait_quiet
  echo "== running $label" >&2
  b0=$(busy_ticks); children_cpu; c0=$own_cpu; t0=$(now)
  "$@" || rc=$?
  foreign_cores "$b0" "$c0" "$t0"
  echo "   other processes used $load cores during $label" >&2
  echo "- $label: other processes used $load cores on average" >>"$notes"
  return $rc
}

# --- dino: configure (first time), build every bench target ------------------------------------------------
benches=()
if ((do_dino)); then
  if [[ ! -f $build/CMakeCache.txt ]]; then
    cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DDINO_CUDA=OFF -DDINO_BUILD_TESTS=OFF \
      -DDINO_BUILD_EXAMPLES=OFF -DDINO_BUILD_BENCH=ON >/dev/null
  else
    cmake -DDINO_BUILD_BENCH=ON "$build" >/dev/null  # picks up bench files added since the last configure
  fi
  for src in "$here"/*_bench.cpp; do
    [[ -e $src ]] || continue
    name=$(basename "$src" .cpp)
    echo "== building $name" >&2
    if cmake --build "$build" --target "$name" -j2 >"$out/$name.build.log" 2>&1; then
      benches+=("$name")
    else
      echo "warning: $name did not build (see $out/$name.build.log); its rows stay empty" >&2
    fi
  done
  [[ -e $here/conv_bench.cpp ]] || echo "note: bench/conv_bench.cpp is not there yet: conv rows show PyTorch only" >&2
fi

# --- PyTorch, with the OpenMP build of OpenBLAS (the fair, faster setup) ------------------------------------
if ((do_torch)); then
  if ! "$py" -c 'import torch' 2>/dev/null; then
    echo "warning: PyTorch is missing for $py: apt-get install python3-torch libopenblas0-openmp; PyTorch columns stay empty" >&2
    do_torch=0
  else
    ompblas=$repo/../shared/bench/torchref/ompblas.sh
    blasdir=/usr/lib/x86_64-linux-gnu/openblas-openmp
    if [[ -x $ompblas ]]; then
      runner=("$ompblas")
    elif [[ -e $blasdir/libblas.so.3 ]]; then
      runner=(env "LD_LIBRARY_PATH=$blasdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
    else
      echo "warning: $blasdir is missing (apt-get install libopenblas0-openmp): PyTorch runs with the pthreads OpenBLAS, up to 2x slower" >&2
      runner=()
    fi
  fi
fi

# --- rounds: every benchmark process once per round ---------------------------------------------------------
# A process can land in a slow or fast mode as a whole (the VM's cores are shared on the host), so each side
# runs in several processes, alternating, and the table pools their repetitions.
dino_json=()
torch_json=()
for ((round = 1; round <= rounds; ++round)); do
  for name in "${benches[@]}"; do
    # Repetitions interleaved at random, so a drift of the machine hits every benchmark alike.
    if measured "$name, round $round" env OMP_NUM_THREADS=2 "$build/bench/$name" --benchmark_format=json \
        --benchmark_repetitions="$reps" --benchmark_min_time="$min_time" \
        --benchmark_enable_random_interleaving=true --benchmark_out="$out/$name.$round.json" \
        --benchmark_out_format=json >/dev/null; then
      dino_json+=("$out/$name.$round.json")
    else
      echo "warning: $name failed in round $round" >&2
    fi
  done
  if ((do_torch)); then
    if measured "torch_ops.py, round $round" env OMP_NUM_THREADS=2 "${runner[@]}" "$py" "$here/torch_ops.py" \
        --repeats "$reps" --min_time "$min_time" >"$out/torch_ops.$round.jsonl"; then
      torch_json+=("$out/torch_ops.$round.jsonl")
    else
      echo "warning: torch_ops.py failed in round $round" >&2
    fi
  fi
done

# --- table -----------------------------------------------------------------------------------------------
echo "== raw results in $out" >&2
{
  "$py" "$here/torch_ops.py" summarize "${dino_json[@]}" ${torch_json[0]:+--torch "${torch_json[@]}"}
  echo
  echo "Load during the runs (0 on a quiet machine):"
  echo
  cat "$notes"
} | tee "$out/table.md"
