"""Speed of a whole ``qd run`` alone and with other busy processes on the machine (run by hand).

python benchmarks/run_under_load.py [--algorithm ns] [--env hardmaze] [--budget 50000]
[--busy 2] [-- EXTRA qd run OPTIONS]

Runs the same ``qd run`` twice in fresh processes, first with nothing else started, then beside
``--busy`` single-threaded Python loops (other experiments sharing a workstation), and reports
evaluations per second of run wall time (``metrics.jsonl``: evaluations / wall_time_s, the
compile included; inductor's disk cache is warmed by a first, untimed run) and the share of the
idle speed kept.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _spin(stop: float) -> None:
    x = 0
    while time.time() < stop:
        x += 1


def timed_run(command: list[str], out: Path) -> dict:
    """Run ``qd run ... --out OUT`` and return its last metrics row."""
    subprocess.run([*command, "--out", str(out)], check=True, capture_output=True)
    rows = (out / "metrics.jsonl").read_text().splitlines()
    return json.loads(rows[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithm", default="ns")
    parser.add_argument("--env", default="hardmaze")
    parser.add_argument("--budget", type=int, default=50000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--busy", type=int, default=2, help="busy processes for the loaded run")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("extra", nargs="*", help="more qd run options (after --)")
    args = parser.parse_args()
    launcher = "import sys; from qd.cli import main; sys.exit(main())"
    command = [sys.executable, "-c", launcher, "run", args.algorithm, "--env", args.env]
    command += ["--budget", str(args.budget), "--seed", str(args.seed), *args.extra]
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        timed_run(command, Path(folder) / "warm")  # fills inductor's cache
        for load in (0, args.busy):
            spinners = [
                multiprocessing.Process(target=_spin, args=(time.time() + 3600,))
                for _ in range(load)
            ]
            for spinner in spinners:
                spinner.start()
            try:
                row = timed_run(command, Path(folder) / f"load{load}")
            finally:
                for spinner in spinners:
                    spinner.terminate()
                    spinner.join()
            results[load] = row["evaluations"] / row["wall_time_s"]
    kept = results[args.busy] / results[0]
    report = {
        "command": "qd " + " ".join(command[3:]),
        "evals_per_s_idle": results[0],
        "evals_per_s_busy": results[args.busy],
        "busy_processes": args.busy,
        "kept": kept,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{report['command']}: {results[0]:.0f} evaluations/s alone, "
            f"{results[args.busy]:.0f} with {args.busy} busy processes ({kept:.0%} kept)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
