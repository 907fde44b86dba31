"""Baselines for fair comparisons: MAP-Elites, CMA-ME (here), CMA-ES and random search
(:mod:`qd.algorithms.reward_search`).

``me`` and ``cma-me`` are pyribs itself (``ribs.archives.GridArchive``, ``GaussianEmitter`` /
``EvolutionStrategyEmitter``, ``ribs.schedulers.Scheduler``); ``cma-es`` drives pyribs's
``ribs.emitters.opt.CMAEvolutionStrategy`` directly; ``random`` samples fresh genomes. All four
evaluate through the run's batched evaluator, spend the budget exactly (the last batch is cut by
``ask(max_count)``), and keep a pyribs ``GridArchive`` over the environment's ground-truth grid
(``env_spec["grid_shape"]`` between ``descriptor_low`` and ``descriptor_high``, 50 x 50 in every
bundled env). That grid is the search archive of ``me``/``cma-me`` and a passive record (a
pyribs "result archive") for ``cma-es``/``random``; it is exposed as the
:class:`qd.archive.Archive` ``elites`` (the run's main archive: ``coverage_archive`` and
``archive_size`` in ``metrics.jsonl`` are computed on it). ``cma-es`` and ``random`` also keep
``best``: every individual that beat the best reward seen so far, in order.

Seeding: ``np.random.SeedSequence(seed).spawn(3)`` gives (grid archive, initial genomes or
CMA-ES, emitters); the emitters' seeds are ``spawn(num_emitters)`` of the third. A plain pyribs
loop built with these seeds gives the same elites (``tests/test_baselines.py`` checks it).

Checkpoints (no pickle): the grid's elites go to the safetensors state in pyribs's own order
(``occupied_list``) and are re-added in that order on load, then the archive's statistics are
restored and the result is compared with what was saved; numpy RNG states (archive, emitters,
rankers, CMA-ES), emitter counters (iterations, restarts) and scalars go to the JSON meta; the
CMA-ES arrays (mean, paths, covariance and its eigen-decomposition) go to the safetensors state.
Resuming from a checkpoint reproduces an uninterrupted run exactly. The grid, the emitters'
checkpoints and the helpers shared with :mod:`qd.algorithms.reward_search` are in
:mod:`qd.algorithms.ribs_grid`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import ribs
import torch
from ribs.emitters import EvolutionStrategyEmitter, GaussianEmitter
from ribs.schedulers import Scheduler

from qd.algorithms.base import Algorithm
from qd.algorithms.ribs_grid import (
    GridElites,
    check_common,
    check_measures,
    check_positive,
    elites_archive,
    emitter_state,
    load_emitter_state,
    outcome_arrays,
)
from qd.archive import Archive
from qd.evaluation import Outcomes

RANKERS = ("2imp", "imp", "2obj", "obj", "2rd", "rd")
SELECTION_RULES = ("filter", "mu")
RESTART_RULES = ("no_improvement", "basic")


# -- configs ---------------------------------------------------------------------------------
@dataclass
class MEConfig:
    """MAP-Elites settings (pyribs GridArchive + GaussianEmitter).

    Attributes:
        batch_size: genomes each emitter makes per generation.
        num_emitters: Gaussian emitters; a generation is ``num_emitters * batch_size``
            evaluations (1 x 200 = NS's 100 parents x 2 offspring).
        sigma: standard deviation of the Gaussian mutation (NS's 0.05).
        genome_low: lower gene bound (pyribs clips to it).
        genome_high: upper gene bound.
        init_std: standard deviation of the initial genomes (N(0, init_std^2), clipped),
            which are the first generation.
        space: behaviour space; must be ``ground_truth`` (the grid is the env's).
    """

    batch_size: int = 200
    num_emitters: int = 1
    sigma: float = 0.05
    genome_low: float = -5.0
    genome_high: float = 5.0
    init_std: float = 1.0
    space: str = "ground_truth"

    def __post_init__(self) -> None:
        check_positive(self, "batch_size", "num_emitters", "sigma", "init_std")
        check_common(self)


@dataclass
class CMAMEConfig:
    """CMA-ME settings (pyribs GridArchive + EvolutionStrategyEmitter with CMA-ES).

    Attributes:
        num_emitters: CMA-ES emitters (pyribs's Lunar Lander CMA-ME example uses 5).
        batch_size: genomes each emitter makes per generation (5 x 40 = 200, NS's generation).
        sigma0: initial CMA-ES step size; with ``x0 = 0`` the first generation is N(0, 1) like
            NS's initial population (pyribs's Lunar Lander example also uses 1.0).
        ranker: pyribs ranker (``2imp`` = two-stage improvement, CMA-ME's improvement emitter).
        selection_rule: ``filter`` (parents = solutions added to the archive) or ``mu``.
        restart_rule: ``no_improvement`` (restart when nothing was added) or ``basic``.
        genome_low: lower gene bound (pyribs resamples out-of-bounds genomes).
        genome_high: upper gene bound.
        space: behaviour space; must be ``ground_truth``.
    """

    num_emitters: int = 5
    batch_size: int = 40
    sigma0: float = 1.0
    ranker: str = "2imp"
    selection_rule: str = "filter"
    restart_rule: str = "no_improvement"
    genome_low: float = -5.0
    genome_high: float = 5.0
    space: str = "ground_truth"

    def __post_init__(self) -> None:
        check_positive(self, "num_emitters", "sigma0")
        if self.batch_size < 2:
            raise ValueError(
                f"batch_size must be >= 2 (CMA-ES needs parents), got {self.batch_size}"
            )
        if self.ranker not in RANKERS:
            raise ValueError(f"ranker must be one of {', '.join(RANKERS)}, got {self.ranker!r}")
        if self.selection_rule not in SELECTION_RULES:
            raise ValueError(f"selection_rule must be filter or mu, got {self.selection_rule!r}")
        if self.restart_rule not in RESTART_RULES:
            raise ValueError(
                f"restart_rule must be no_improvement or basic, got {self.restart_rule!r}"
            )
        check_common(self)


# -- MAP-Elites and CMA-ME -------------------------------------------------------------------
class _RibsScheduled(Algorithm):
    """A pyribs Scheduler over a :class:`GridElites` (shared by MAP-Elites and CMA-ME)."""

    name = "ribs"
    main_archive = "elites"

    def __init__(
        self,
        config,
        *,
        genome_size: int,
        measure_dim: int,
        env_spec: dict,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        check_measures(measure_dim, env_spec)
        self.config = config
        self.genome_size = int(genome_size)
        self.device = torch.device(device)
        self.generation = 0
        archive_seed, init_seed, emitter_seed = np.random.SeedSequence(int(seed)).spawn(3)
        self.grid = GridElites(solution_dim=genome_size, env_spec=env_spec, seed=archive_seed)
        self.emitters = self._make_emitters(init_seed, emitter_seed.spawn(config.num_emitters))
        self.scheduler = Scheduler(self.grid.archive, self.emitters)
        self.elites = elites_archive("elites", genome_size, env_spec, self.device, seed + 1)
        self._asked: np.ndarray | None = None
        self._count = 0

    def _make_emitters(self, init_seed, seeds) -> list:
        raise NotImplementedError

    @property
    def archives(self) -> dict[str, Archive]:
        return {"elites": self.elites}

    def ask(self, max_count: int | None = None) -> torch.Tensor:
        """One generation of the scheduler (every emitter's batch), cut to ``max_count``."""
        solutions = np.array(self.scheduler.ask(), dtype=np.float64)
        count = len(solutions) if max_count is None else max(0, min(len(solutions), max_count))
        self._asked, self._count = solutions, count
        return torch.from_numpy(solutions[:count]).float().to(self.device)

    def tell(self, genomes: torch.Tensor, outcomes: Outcomes, descriptors: torch.Tensor) -> dict:
        """Add the evaluated genomes to the grid and update the emitters.

        A whole generation goes through ``Scheduler.tell``. A cut one (the end of the budget)
        is added to the archive directly, and only emitters whose whole batch was evaluated
        are told; the scheduler is then rebuilt (it holds nothing but the pending batch).
        """
        if self._asked is None or len(genomes) != self._count:
            raise RuntimeError("tell() must follow ask() with the genomes it returned")
        objective, measures, reward_area = outcome_arrays(outcomes, descriptors)
        n = len(objective)
        if n == len(self._asked):
            self.scheduler.tell(objective, measures, reward_area=reward_area)
        else:
            solutions = self._asked[:n]
            info = self.grid.add(solutions, objective, measures, reward_area)
            start = 0
            for emitter in self.emitters:
                end = start + emitter.batch_size
                if end <= n:
                    part = slice(start, end)
                    emitter.tell(
                        solutions[part],
                        objective[part],
                        measures[part],
                        {k: v[part] for k, v in info.items()},
                        reward_area=reward_area[part],
                    )
                start = end
            self.scheduler = Scheduler(self.grid.archive, self.emitters)
        self._asked = None
        self.generation += 1
        self.grid.export(self.elites)
        stats = self.grid.archive.stats
        return {
            "generation": self.generation,
            "elites": len(self.grid),
            "elites_max_objective": None if stats.obj_max is None else float(stats.obj_max),
        }

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Tensors and JSON meta that rebuild grid and emitters (archives are saved apart)."""
        tensors: dict[str, torch.Tensor] = {}
        meta = {
            "generation": self.generation,
            "config": asdict(self.config),
            "ribs_version": ribs.__version__,
            "grid": self.grid.state("grid.", tensors),
            "emitters": [
                emitter_state(e, f"emitter{i}.", tensors) for i, e in enumerate(self.emitters)
            ],
        }
        return {"tensors": tensors, "meta": meta}

    def load_state_dict(self, state: dict, archives: dict[str, Archive]) -> None:
        """Restore from :meth:`state_dict` and loaded archives."""
        tensors, meta = state["tensors"], state["meta"]
        if len(meta["emitters"]) != len(self.emitters):
            raise ValueError(
                f"checkpoint has {len(meta['emitters'])} emitters, this config {len(self.emitters)}"
            )
        self.grid.load("grid.", tensors, meta["grid"])
        for i, (emitter, m) in enumerate(zip(self.emitters, meta["emitters"], strict=True)):
            load_emitter_state(emitter, f"emitter{i}.", tensors, m)
        self.scheduler = Scheduler(self.grid.archive, self.emitters)
        self.generation = int(meta["generation"])
        self.elites = archives["elites"]
        self._asked = None


class MapElites(_RibsScheduled):
    """MAP-Elites (Mouret & Clune 2015) from pyribs: GridArchive + GaussianEmitter(s).

    The first generation is ``num_emitters * batch_size`` genomes ~ N(0, init_std^2) clipped
    (each emitter's ``initial_solutions``); afterwards each emitter mutates uniformly chosen
    elites with N(0, sigma^2) noise, clipped to the gene bounds.
    """

    name = "me"

    def _make_emitters(self, init_seed, seeds) -> list:
        cfg, d = self.config, self.genome_size
        rng = np.random.default_rng(init_seed)
        total = cfg.num_emitters * cfg.batch_size
        init = np.clip(
            rng.standard_normal((total, d)) * cfg.init_std, cfg.genome_low, cfg.genome_high
        )
        return [
            GaussianEmitter(
                self.grid.archive,
                sigma=cfg.sigma,
                initial_solutions=init[i * cfg.batch_size : (i + 1) * cfg.batch_size],
                lower_bounds=np.full(d, cfg.genome_low),
                upper_bounds=np.full(d, cfg.genome_high),
                batch_size=cfg.batch_size,
                seed=s,
            )
            for i, s in enumerate(seeds)
        ]


class CMAME(_RibsScheduled):
    """CMA-ME (Fontaine et al. 2020) from pyribs: GridArchive + EvolutionStrategyEmitters.

    Every emitter is a CMA-ES (``es="cma_es"``) started at x0 = 0 with ``sigma0``, ranking by
    ``ranker`` (two-stage improvement by default), restarting from a random elite by
    ``restart_rule`` or when CMA-ES's own stop criteria fire.
    """

    name = "cma-me"

    def _make_emitters(self, init_seed, seeds) -> list:
        cfg, d = self.config, self.genome_size
        return [
            EvolutionStrategyEmitter(
                self.grid.archive,
                x0=np.zeros(d),
                sigma0=cfg.sigma0,
                ranker=cfg.ranker,
                es="cma_es",
                selection_rule=cfg.selection_rule,
                restart_rule=cfg.restart_rule,
                lower_bounds=np.full(d, cfg.genome_low),
                upper_bounds=np.full(d, cfg.genome_high),
                batch_size=cfg.batch_size,
                seed=s,
            )
            for s in seeds
        ]

    def tell(self, genomes: torch.Tensor, outcomes: Outcomes, descriptors: torch.Tensor) -> dict:
        info = super().tell(genomes, outcomes, descriptors)
        info["restarts"] = sum(e.restarts for e in self.emitters)
        return info
