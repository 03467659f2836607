#!/usr/bin/env bash
# The dino command end to end on a small Fashion-MNIST subset: a run writes its results folder; its config.json
# repeats it exactly; a run stopped by SIGINT and resumed ends with the same checkpoint and metrics, byte for
# byte; --resume refuses flags that would change the run; bad input exits with one line and writes nothing.
#   tests/tools/dino_cli.sh <dino binary> <work dir>
set -euo pipefail
dino=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
cd "$work"
cat > tiny.json <<'JSON'
{"mc": "2x28+4x28", "per_crop_augs": ["dino"], "enc": "convnet_16_1", "hid_dims": [32], "l2bot_dim": 16,
 "out_dim": 64, "bs_train": 16, "n_samples": 320, "n_epochs": 2, "validation_freq": 0, "n_workers": 1,
 "n_threads": 1, "seed": 7, "log_every": 5, "save_ckpt": ["loss_max"]}
JSON
fail() { echo "FAIL: $*" >&2; exit 1; }
only_run() { local d=("$1"/DINO/*); [[ ${#d[@]} == 1 ]] || fail "expected one run in $1"; echo "${d[0]}"; }

"$dino" --from_json tiny.json --results_dir first > first.out
first=$(only_run first)
for f in config.json metrics.jsonl metrics.csv summary.json histograms.jsonl plot.svg init.safetensors last.safetensors; do
  [[ -s $first/$f ]] || fail "the run wrote no $f"
done
ls "$first"/events.out.tfevents.* > /dev/null || fail "no TensorBoard events"
ls "$first"/epoch=*-loss_max=*.safetensors > /dev/null || fail "no loss_max checkpoint"
grep -q "^results: $first" first.out || fail "the results folder is not printed"

# config.json reloads to the same configuration, and the run it describes is the same run.
"$dino" --from_json "$first/config.json" > again.out
again=$(sed -n 's/^results: //p' again.out)
[[ -d $again && $again != "$first" && $again == first/DINO/* ]] || fail "the reloaded run is not beside the first"
cmp <(grep -v '"logdir"' "$first/config.json") <(grep -v '"logdir"' "$again/config.json") ||
  fail "config.json does not reload to itself"
grep -q '"embed_dim": 64,' "$first/config.json" || fail "config.json does not record the embedding size"
cmp "$first/metrics.jsonl" "$again/metrics.jsonl" || fail "the same configuration trained differently"

# Bad input: exit code 2 (usage) or 1 (a file), one line on stderr, and no results folder.
bad() {
  local want=$1 rc=0
  shift
  "$dino" "$@" > /dev/null 2> bad.err || rc=$?
  [[ $rc == "$want" ]] || fail "'$*' exited with $rc instead of $want: $(cat bad.err)"
  [[ $(wc -l < bad.err) == 1 ]] || fail "'$*' did not give one line: $(cat bad.err)"
  [[ ! -e bad ]] || fail "'$*' wrote into the results folder"
}
bad 2 --results_dir bad --enc vgg11 --mc 2x28
bad 2 --results_dir bad --enc Flatten --enc_norm_layer GroupNorm8 --mc 2x28
bad 2 --results_dir bad --enc Flatten  # 128- and 96-pixel crops: two embedding sizes for one head
bad 2 --results_dir bad --from_json tiny.json --opt_lr "CosSched(1"
bad 1 --results_dir bad --from_json tiny.json --dataset MNIST --data_dir /nonexistent
bad 1 --results_dir bad --from_json tiny.json --t_init t_ckpt --ckpt_path tiny.json
bad 2 --resume bad
bad 1 --resume tiny.json

# Stopped by SIGINT once a few steps are logged, then resumed.
"$dino" --from_json tiny.json --results_dir again2 > stopped.out 2> stopped.err &
pid=$!
for _ in $(seq 600); do
  run=(again2/DINO/*)
  if [[ -e ${run[0]}/metrics.jsonl ]] && (( $(wc -l < "${run[0]}/metrics.jsonl") >= 2 )); then break; fi
  sleep 0.1
done
kill -INT $pid
rc=0
wait $pid || rc=$?
stop_rc=$rc
stopped=$(only_run again2)
if [[ $rc == 130 ]]; then
  grep -q "continue with: dino --resume" stopped.err || fail "no resume hint after SIGINT"
  [[ -s $stopped/last.safetensors ]] || fail "SIGINT left no checkpoint"
  rc=0
  "$dino" --resume "$stopped" --results_dir x > /dev/null 2> refused.err || rc=$?
  [[ $rc == 2 ]] && grep -q -- "--results_dir cannot be given with it" refused.err || fail "--resume accepted another flag"
  "$dino" --resume "$stopped" --n_workers 2 > /dev/null || fail "the resumed run failed"
elif [[ $rc != 0 ]]; then
  fail "the stopped run exited with $rc"
fi  # rc 0: it finished before the signal came; the comparison below still holds
for f in metrics.jsonl metrics.csv summary.json; do
  cmp "$first/$f" "$stopped/$f" || fail "$f differs after stop and resume"
done
# The checkpoint's tensors (its header differs: the configuration it records has --n_workers 2).
tensors_of() { tail -c +$((9 + $(od -An -tu8 -N8 "$1" | tr -d ' '))) "$1"; }
cmp <(tensors_of "$first/last.safetensors") <(tensors_of "$stopped/last.safetensors") ||
  fail "last.safetensors holds other tensors after stop and resume"
echo "dino_cli: ok (the stopped run exited with $stop_rc)"
