#!/usr/bin/env bash
# GPU checks for a machine with CUDA and PyTorch already installed (run from the repo root):
# the CUDA tests, then HardMaze rollout throughput and novelty throughput on the GPU.
# Extra wheels (pyribs and its pure-Python needs) may be carried in .whl/.
set -uo pipefail
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -5
python3 -m qd.cli bench rollout --env hardmaze --device cuda --batch 4096 16384 65536 \
  --json > "$OUT/rollout_cuda.json"; cat "$OUT/rollout_cuda.json"
python3 -m qd.cli bench rollout --env hardmaze --device cuda --batch 200 --json
python3 -m qd.cli bench novelty --device cuda --dim 2 10 --json > "$OUT/novelty_cuda.json"
cat "$OUT/novelty_cuda.json"
