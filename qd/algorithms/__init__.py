"""Algorithms: ask/tell searches built on :class:`qd.archive.Archive`.

``ALGORITHMS`` maps a CLI name to (config dataclass, algorithm class). Every algorithm has
``archives`` (name -> Archive), ``ask(max_count)``, ``tell(genomes, outcomes, descriptors)``,
``state_dict()`` and ``load_state_dict(state, archives)``, and its config has a ``space`` field
naming the behaviour space it searches in. Optional: ``ready_for_checkpoint()`` (default: always)
and ``main_archive``, the name of the archive whose ground truth gives ``coverage_archive`` and
``archive_size`` in the metrics (default ``"novelty"``).
"""

from __future__ import annotations

from qd.algorithms.baselines import (
    CMAES,
    CMAME,
    CMAESConfig,
    CMAMEConfig,
    MapElites,
    MEConfig,
    RandomConfig,
    RandomSearch,
)
from qd.algorithms.ns import NoveltySearch, NSConfig
from qd.algorithms.nslc import NSGA2, NSLC, NSGA2Config, NSLCConfig
from qd.algorithms.serene import Serene, SereneConfig

ALGORITHMS: dict[str, tuple[type, type]] = {
    "ns": (NSConfig, NoveltySearch),
    "serene": (SereneConfig, Serene),
    "me": (MEConfig, MapElites),
    "cma-me": (CMAMEConfig, CMAME),
    "cma-es": (CMAESConfig, CMAES),
    "random": (RandomConfig, RandomSearch),
    "nslc": (NSLCConfig, NSLC),
    "nsga2": (NSGA2Config, NSGA2),
}


def algorithm_names() -> list[str]:
    """Names accepted by ``qd run``."""
    return sorted(ALGORITHMS)


def lookup(name: str) -> tuple[type, type]:
    """(config class, algorithm class) of ``name``, with an error listing the known ones."""
    if name not in ALGORITHMS:
        raise KeyError(
            f"unknown algorithm {name!r}; known algorithms: {', '.join(algorithm_names())}"
        )
    return ALGORITHMS[name]
