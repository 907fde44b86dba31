"""Emitters: local searches around rewarding individuals (SERENE), batched across emitters."""

from qd.emitters.elitist import (
    ElitistEmitters,
    EmitterConfig,
    improvement,
    initial_sigma,
    stagnated,
    stagnation_window,
)

__all__ = [
    "ElitistEmitters",
    "EmitterConfig",
    "improvement",
    "initial_sigma",
    "stagnated",
    "stagnation_window",
]
