#!/usr/bin/env bash
# Learned-space checks of issue #5, all runs at once, one CPU core each (small-batch rollouts are
# fastest on the CPU) with the autoencoder on AE_DEVICE (default cuda):
#   TAXONS, TAXO-N, TAXO-S and NT on HardMaze (HM_BUDGET evaluations, seeds 0 1 2) and
#   STAX on Curling (CU_BUDGET evaluations, seed 0, compiled rollouts).
# Every run stops at DEADLINE seconds if unfinished (its metrics.jsonl still holds every
# generation it finished). Results (metrics, configs, logs, plots; no archives or checkpoints)
# are packed into $OUT/learned.tar.gz. Extra wheels (pyribs and its pure-Python needs) may be
# carried in .whl/. Compare with NS on the ground truth: `qd run ns --env hardmaze --budget 100000`.
set -uo pipefail
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/learned-out}
WORK=${WORK:-/tmp/learned-runs}
HM_BUDGET=${HM_BUDGET:-100000}
CU_BUDGET=${CU_BUDGET:-200000}
DEADLINE=${DEADLINE:-530}
AE_DEVICE=${AE_DEVICE:-cuda}
SEEDS=${SEEDS:-"0 1 2"}
ALGORITHMS=${ALGORITHMS:-"taxons taxo-n taxo-s nt"}
mkdir -p "$OUT" "$WORK"
launch() {
  local name=$1
  shift
  OMP_NUM_THREADS=1 timeout "$DEADLINE" python3 -m qd.cli run "$@" --out "$WORK/$name" \
    --no-progress --set "ae_device=$AE_DEVICE" >"$WORK/$name.log" 2>&1 &
}
for seed in $SEEDS; do
  for algorithm in $ALGORITHMS; do
    launch "$algorithm-hardmaze-$seed" "$algorithm" --env hardmaze --budget "$HM_BUDGET" --seed "$seed"
  done
done
if [ "$CU_BUDGET" -gt 0 ]; then
  launch stax-curling-0 stax --env curling --budget "$CU_BUDGET" --seed 0 --compile
fi
wait
tar czf "$OUT/learned.tar.gz" -C "$WORK" --exclude=checkpoints --exclude=archive .
ls -la "$OUT"
for f in "$WORK"/*/metrics.jsonl; do
  echo "$f $(tail -1 "$f" | python3 -c 'import json,sys; m=json.loads(sys.stdin.read()); print(m["evaluations"], round(m["coverage"],3), round(m["coverage_archive"],3), m["max_reward"], round(m.get("ae_time_s",0)), round(m["wall_time_s"]))')"
done
