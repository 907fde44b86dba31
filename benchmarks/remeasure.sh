#!/usr/bin/env bash
# Issue-17/20 re-measurements on a many-core machine (the GPU host: 16 cores + one GPU), each run
# one torch thread in its own process: SERENE vs NS on Curling (200k) and the redundant arm
# (100k), TAXONS vs NS on HardMaze (100k, the AE on the GPU), and DvD-TD3 at the paper's
# 256 x 256 on point-trap for as long as the window allows. Every run stops at LIMIT seconds
# (a cut run keeps its metrics.jsonl up to then). Packs metrics.jsonl + config.json of every
# run into $OUT/runs.tar.gz; tables and curves: benchmarks/compare_runs.py on the unpacked runs.
set -uo pipefail
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
OUT=${OUT:-/tmp/remeasure}
LIMIT=${LIMIT:-420}
RUNS=/tmp/remeasure-runs
mkdir -p "$OUT" "$RUNS"
launch() {  # name, then qd run arguments
  local name=$1; shift
  timeout "$LIMIT" python3 -m qd.cli run "$@" --threads 1 --no-progress --out "$RUNS/$name" \
    >"$RUNS/$name.log" 2>&1 &
}
for s in 0 1 2; do
  launch "serene-curling-s$s" serene --env curling --budget 200000 --seed $s
  launch "serene-redundant-arm-s$s" serene --env redundant-arm --budget 100000 --seed $s
  launch "taxons-hardmaze-s$s" taxons --env hardmaze --budget 100000 --seed $s --set ae_device=cuda
  launch "ns-hardmaze-s$s" ns --env hardmaze --budget 100000 --seed $s
  launch "ns-curling-s$s" ns --env curling --budget 200000 --seed $s
  launch "ns-redundant-arm-s$s" ns --env redundant-arm --budget 100000 --seed $s
  launch "dvd-td3-point-trap-s$s" dvd-td3 --env point-trap --budget 20000 --seed $s --device cuda
done
start=$EPOCHREALTIME
while [ -n "$(jobs -r)" ]; do
  sleep 30
  echo "$(python3 -c "print(round($EPOCHREALTIME - $start))") s: $(jobs -r | wc -l) running"
done
for f in "$RUNS"/*.log; do echo "== $f"; tail -n 2 "$f"; done
(cd "$RUNS" && tar czf "$OUT/runs.tar.gz" --exclude='checkpoints' --exclude='archive' \
  --exclude='plots' --exclude='*.safetensors' .)
ls -la "$OUT"
