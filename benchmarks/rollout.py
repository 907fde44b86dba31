"""Rollout throughput on HardMaze for several batch sizes (ratio against B = 1, same process).

python benchmarks/rollout.py [--device cuda] [--batch 1 256 1024 4096]
"""

from __future__ import annotations

import sys

from qd.cli import main

if __name__ == "__main__":
    args = sys.argv[1:] or ["--batch", "1", "256", "1024", "4096"]
    sys.exit(main(["bench", "rollout", "--env", "hardmaze", *args]))
