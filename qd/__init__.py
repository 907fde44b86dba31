"""qdtorch: quality-diversity search for sparse-reward problems with batched torch rollouts."""

from qd.evaluation import LocalEvaluator, Outcomes
from qd.policies import SereneMLP, TanhMLP, make_policy

__version__ = "0.1.0"

__all__ = ["LocalEvaluator", "Outcomes", "SereneMLP", "TanhMLP", "make_policy", "__version__"]
