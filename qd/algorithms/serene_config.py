"""SERENE's settings (:class:`SereneConfig`): the NS fields plus the emitters' and the
meta-scheduler's, checked when built."""

from __future__ import annotations

from dataclasses import dataclass

from qd.algorithms.ns import NSConfig
from qd.emitters import EMITTER_TYPES
from qd.emitters.schedulers import SCHEDULERS


@dataclass
class SereneConfig(NSConfig):
    """SERENE settings: the NS fields plus the emitter and scheduler ones (papers' defaults).

    Attributes:
        chunk_size: evaluations per exploration or exploitation chunk.
        scheduler: ``alternating``, ``fixed``, ``time`` or ``ucb``.
        budget: total evaluations the ``time`` scheduler plans over (a run sets it to its own
            budget unless given).
        emitter_mu: emitter parents.
        emitter_offspring_per_parent: emitter children per parent.
        bootstrap_generations: emitter generations after the initial one while bootstrapping.
        emitter_archive_add: buffer individuals archived when an emitter stops.
        emitter_type: ``elitist`` (SERENE's (6 + 12) EA on reward), ``novelty`` (the same EA
            selecting parents by novelty w.r.t. the NS reference set), ``cma`` (CMA-ES on
            reward, population 6, sigma0 = sigma_e, bounds [-5, 5]) or ``pgpe`` (EvoTorch's
            functional PGPE on reward, batched over the emitters, population ``emitter_mu``,
            stdev sigma_e: :mod:`qd.emitters.pgpe`). Every type is bootstrapped for its
            initial generation and ``bootstrap_generations`` more; ``cma`` and ``pgpe``
            emitters are not pooled by ``exploit="concurrent"`` (they run one at a time).
        local_improvement: when a chunk ends, the improvement of the emitter that ran is
            re-estimated as the mean reward of its last 3 generations minus its first 3
            (``False``, the authors' default) or minus the last 3 before this run (``True``;
            the first such baseline is the last 3 bootstrap generations). Both are the
            authors' code (its ``local_improvement`` flag); the papers only define the
            bootstrap test.
        exploit: ``sequential`` (the papers: one emitter from the first Pareto front runs until
            the chunk ends or it stops) or ``concurrent`` (opt-in: the emitters of the first
            front run together, one generation each per batch, sharing the chunk's budget).
        exploit_emitters: with ``concurrent``, run the best K emitters in NSGA-II order
            (front, then crowding) instead of the first front (0 = the first front).
    """

    chunk_size: int = 1000
    scheduler: str = "alternating"
    budget: int = 500_000
    emitter_mu: int = 6
    emitter_offspring_per_parent: int = 2
    bootstrap_generations: int = 5
    emitter_archive_add: int = 5
    emitter_type: str = "elitist"
    local_improvement: bool = False
    exploit: str = "sequential"
    exploit_emitters: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.scheduler not in SCHEDULERS:
            raise ValueError(
                f"scheduler must be one of {sorted(SCHEDULERS)}, got {self.scheduler!r}"
            )
        if self.chunk_size <= 0:
            raise ValueError("chunk_size must be > 0")
        if self.exploit not in ("sequential", "concurrent"):
            raise ValueError(f"exploit must be sequential or concurrent, got {self.exploit!r}")
        if self.exploit_emitters < 0:
            raise ValueError(f"exploit_emitters must be >= 0, got {self.exploit_emitters}")
        if self.emitter_type not in EMITTER_TYPES:
            raise ValueError(
                f"emitter_type must be one of {sorted(EMITTER_TYPES)}, got {self.emitter_type!r}"
            )
        if self.emitter_type == "pgpe" and self.emitter_mu % 2:
            raise ValueError(
                f"pgpe emitters sample mirrored pairs: emitter_mu must be even, got "
                f"{self.emitter_mu}"
            )
