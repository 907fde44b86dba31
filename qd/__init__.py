"""qdtorch: quality-diversity search for sparse-reward problems with batched torch rollouts."""

import os as _os

# OpenMP threads that wait for work sleep instead of spinning: with two other busy processes on
# a 2-core machine, spinning threads made rollouts 5-10x slower (see README, "Threads"). Read
# when torch starts OpenMP, so only effective if qd is imported before torch; an explicit
# OMP_WAIT_POLICY wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from qd.evaluation import LocalEvaluator, Outcomes
from qd.policies import SereneMLP, TanhMLP, make_policy

__version__ = "0.1.0"

__all__ = ["LocalEvaluator", "Outcomes", "SereneMLP", "TanhMLP", "make_policy", "__version__"]
