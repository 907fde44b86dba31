"""Emitters: local searches around rewarding individuals (SERENE), batched across emitters.

``EMITTER_TYPES`` maps SERENE's ``emitter_type`` option to the batch class: ``elitist`` and
``novelty`` (:class:`ElitistEmitters`, selecting by reward or by novelty) and ``cma``
(:class:`CMAEmitters`).
"""

from qd.emitters.cma import CMAEmitters
from qd.emitters.elitist import (
    ElitistEmitters,
    EmitterConfig,
    improvement,
    initial_sigma,
    stagnated,
    stagnation_window,
)

EMITTER_TYPES = {"elitist": ElitistEmitters, "novelty": ElitistEmitters, "cma": CMAEmitters}

__all__ = [
    "EMITTER_TYPES",
    "CMAEmitters",
    "ElitistEmitters",
    "EmitterConfig",
    "improvement",
    "initial_sigma",
    "stagnated",
    "stagnation_window",
]
