#!/usr/bin/env bash
# TAXONS on HardMaze by frame render (issue 17): the authors' render (robot radius 6, goals
# drawn), the authors' render with a radius-90 robot, and the legacy render (grey maze, no
# goals, radius 90), seeds $SEEDS, against NS on the ground truth; all runs at once, one CPU
# core each, the AE on $AE_DEVICE; each stops at $DEADLINE s. Then the AE probe
# (benchmarks/ae_render_radius.py) per render. Prints coverage at the largest evaluation count
# every run reached; metrics are packed into $OUT/maze-render.tar.gz.
set -uo pipefail
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/maze-render-out}
WORK=${WORK:-/tmp/maze-render-runs}
BUDGET=${BUDGET:-100000}
DEADLINE=${DEADLINE:-400}
AE_DEVICE=${AE_DEVICE:-cuda}
SEEDS=${SEEDS:-"0 1 2"}
PROBE=${PROBE:-1}
mkdir -p "$OUT" "$WORK"
launch() {
  local name=$1
  shift
  OMP_NUM_THREADS=1 timeout "$DEADLINE" python3 -m qd.cli run "$@" --out "$WORK/$name" \
    --no-progress --env hardmaze --budget "$BUDGET" >"$WORK/$name.log" 2>&1 &
}
for seed in $SEEDS; do
  launch "authors6-$seed" taxons --seed "$seed" --set "ae_device=$AE_DEVICE"
  launch "authors90-$seed" taxons --seed "$seed" --set "ae_device=$AE_DEVICE" \
    --set env.render_radius=90
  launch "legacy90-$seed" taxons --seed "$seed" --set "ae_device=$AE_DEVICE" \
    --set env.render_style=legacy
  launch "ns-$seed" ns --seed "$seed"
done
[ "$PROBE" = 1 ] && (
  OMP_NUM_THREADS=2 python3 benchmarks/ae_render_radius.py --style authors --radii 6 30 90 \
    --device "$AE_DEVICE"
  OMP_NUM_THREADS=2 python3 benchmarks/ae_render_radius.py --style legacy --radii 90 \
    --device "$AE_DEVICE"
) >"$WORK/ae_probe.jsonl" 2>"$WORK/ae_probe.err" &
wait
cat "$WORK/ae_probe.jsonl"
tail -3 "$WORK/ae_probe.err"
python3 - "$WORK" <<'PY'
import json, pathlib, sys
work = pathlib.Path(sys.argv[1])
runs = {}
for path in sorted(work.glob("*/metrics.jsonl")):
    lines = [json.loads(l) for l in path.read_text().splitlines() if '"coverage"' in l]
    if lines:
        runs[path.parent.name] = lines
common = min(lines[-1]["evaluations"] for lines in runs.values())
print(f"coverage (all evaluated / novelty archive) at {common} evaluations")
for name, lines in runs.items():
    row = next(l for l in lines if l["evaluations"] >= common)
    print(f"{name}: {row['coverage']:.3f} / {row['coverage_archive']:.3f} "
          f"(reached {lines[-1]['evaluations']})")
PY
tar czf "$OUT/maze-render.tar.gz" -C "$WORK" --exclude=checkpoints --exclude=archive .
