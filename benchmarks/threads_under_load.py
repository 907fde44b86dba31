"""Rollout throughput with and without other busy processes, per thread count and OpenMP wait
policy (run by hand; each setting runs in a fresh process, since the wait policy is read when
the OpenMP runtime starts).

python benchmarks/threads_under_load.py [--env hardmaze] [--batch 200 4096] [--busy 2]

"Busy" processes are single-threaded Python loops, like other experiments sharing a workstation.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time


def _spin(stop: float) -> None:
    x = 0
    while time.time() < stop:
        x += 1


def measure(env: str, batches: list[int], steps: int, threads: int, wait: str) -> list[float]:
    """policy-steps/s per batch size, in a fresh process."""
    environ = {**os.environ, "OMP_WAIT_POLICY": wait}
    environ.pop("OMP_NUM_THREADS", None)
    cmd = [sys.executable, "-m", "qd.cli", "bench", "rollout", "--env", env, "--json"]
    cmd += ["--steps", str(steps), "--threads", str(threads), "--batch", *map(str, batches)]
    out = subprocess.run(cmd, env=environ, capture_output=True, text=True, check=True).stdout
    return [row["policy_steps_per_s"] for row in json.loads(out)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="hardmaze")
    parser.add_argument("--batch", type=int, nargs="+", default=[12, 200, 4096])
    parser.add_argument("--steps", type=int, default=400, help="episode length")
    parser.add_argument("--busy", type=int, default=2, help="busy processes for the loaded runs")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    settings = [(t, w) for t in args.threads for w in ("PASSIVE", "ACTIVE")]
    rows = {}
    for load in (0, args.busy):
        procs = [
            multiprocessing.Process(target=_spin, args=(time.time() + 3600,)) for _ in range(load)
        ]
        for p in procs:
            p.start()
        try:
            for threads, wait in settings:
                rows[(load, threads, wait)] = measure(
                    args.env, args.batch, args.steps, threads, wait
                )
        finally:
            for p in procs:
                p.terminate()
    print(f"{args.env}, {args.steps}-step episodes, M policy-steps/s (batch sizes {args.batch})")
    print("| threads | OMP_WAIT_POLICY | " + " | ".join(
        f"B={b} idle | B={b} {args.busy} busy | kept" for b in args.batch) + " |")  # fmt: skip
    print("| --- | --- | " + " | ".join("--- | --- | ---" for _ in args.batch) + " |")
    for threads, wait in settings:
        idle, busy = rows[(0, threads, wait)], rows[(args.busy, threads, wait)]
        pairs = zip(idle, busy, strict=True)
        cells = [f"{i / 1e6:.3f} | {b / 1e6:.3f} | {b / i:.0%}" for i, b in pairs]
        print(f"| {threads} | {wait} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
