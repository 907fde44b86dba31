"""Exact k-NN novelty of 4,096 queries against 100,000 descriptors (d = 2 and 10), ours vs
scikit-learn NearestNeighbors and pyribs ProximityArchive in the same process.

    python benchmarks/novelty.py [--device cuda]
"""

from __future__ import annotations

import sys

from qd.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "novelty", *sys.argv[1:]]))
