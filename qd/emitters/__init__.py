"""Emitters: local searches around rewarding individuals (SERENE), batched across emitters.

``EMITTER_TYPES`` maps SERENE's ``emitter_type`` option to the batch class: ``elitist`` and
``novelty`` (:class:`ElitistEmitters`, selecting by reward or by novelty), ``cma``
(:class:`CMAEmitters`) and ``pgpe`` (:class:`PGPEEmitters`, EvoTorch's functional PGPE).
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
from qd.emitters.pgpe import PGPEEmitters

EMITTER_TYPES = {
    "elitist": ElitistEmitters,
    "novelty": ElitistEmitters,
    "cma": CMAEmitters,
    "pgpe": PGPEEmitters,
}

__all__ = [
    "EMITTER_TYPES",
    "CMAEmitters",
    "ElitistEmitters",
    "EmitterConfig",
    "PGPEEmitters",
    "improvement",
    "initial_sigma",
    "stagnated",
    "stagnation_window",
]
