#!/usr/bin/env bash
# GPU checks for a machine with CUDA and PyTorch already installed (run from the repo root):
# the CUDA tests, compiled-vs-eager exactness on CUDA, HardMaze rollout throughput (eager,
# exact compiled, fused) and 100 lockstep NS seeds on the GPU. Results land in $OUT.
# Extra wheels (pyribs and its pure-Python needs) may be carried in .whl/.
set -uo pipefail
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu-check}
LOCKSTEP_BUDGET=${LOCKSTEP_BUDGET:-1000}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv
python3 -c 'import torch; print("torch", torch.__version__)'
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -3
timeout 150 python3 benchmarks/cuda_exactness.py --envs hardmaze curling --batch 256 \
  | tee "$OUT/cuda_exactness.jsonl"
timeout 120 python3 -m qd.cli bench rollout --env hardmaze --device cuda \
  --batch 12 200 4096 65536 --compile --fused --json | tee "$OUT/rollout_cuda.json"
start=$EPOCHREALTIME
timeout 100 python3 -m qd.cli run ns --env hardmaze --seeds 0-99 --budget "$LOCKSTEP_BUDGET" \
  --device cuda --set max_batch=auto --no-progress --out /tmp/lockstep100 2>&1 | tail -3
echo "lockstep 100 NS seeds x $LOCKSTEP_BUDGET evaluations: $(python3 -c "print(round($EPOCHREALTIME - $start, 1))") s"
tail -n 1 /tmp/lockstep100/seed-0/metrics.jsonl
