"""qdtorch: quality-diversity search for sparse-reward problems with batched torch rollouts."""

from __future__ import annotations

import importlib
import os as _os

# OpenMP threads that wait for work sleep instead of spinning: with two other busy processes on
# a 2-core machine, spinning threads made rollouts 5-10x slower (see README, "Threads"). Read
# when torch starts OpenMP, so only effective if qd is imported before torch; an explicit
# OMP_WAIT_POLICY wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

# imported on first use, so that ``qd --help`` and ``qd inspect`` start without torch
_LAZY = {
    "LocalEvaluator": "qd.evaluation",
    "Outcomes": "qd.evaluation",
    "SereneMLP": "qd.policies",
    "TanhMLP": "qd.policies",
    "make_policy": "qd.policies",
}

__all__ = ["LocalEvaluator", "Outcomes", "SereneMLP", "TanhMLP", "make_policy", "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'qd' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
