"""CMA-ES on reward and random search: baselines with a passive grid of elites.

Both keep the pyribs ``GridArchive`` record and the ``best`` archive described in
:mod:`qd.algorithms.baselines` (seeding and checkpoints; the shared helpers are in
:mod:`qd.algorithms.ribs_grid`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import ribs
import torch
from ribs.emitters.opt import CMAEvolutionStrategy

from qd.algorithms.base import Algorithm
from qd.algorithms.ribs_grid import (
    GridElites,
    check_common,
    check_measures,
    check_positive,
    elites_archive,
    outcome_arrays,
)
from qd.archive import Archive
from qd.emitters.cma import cma_state, load_cma_state
from qd.evaluation import Outcomes


@dataclass
class CMAESConfig:
    """CMA-ES on reward (pyribs's CMAEvolutionStrategy), restarted when it stops.

    Attributes:
        population: genomes per generation; 0 = CMA-ES's default ``4 + int(3 ln D)``.
        sigma0: initial step size of every (re)start.
        init_std: restarts begin at x0 ~ N(0, init_std^2) (clipped); the first start is x0 = 0.
        genome_low: lower gene bound (pyribs resamples out-of-bounds genomes).
        genome_high: upper gene bound.
        space: behaviour space; must be ``ground_truth`` (used only for the passive grid).
    """

    population: int = 0
    sigma0: float = 1.0
    init_std: float = 1.0
    genome_low: float = -5.0
    genome_high: float = 5.0
    space: str = "ground_truth"

    def __post_init__(self) -> None:
        if self.population != 0 and self.population < 2:
            raise ValueError(
                f"population must be 0 (default 4 + 3 ln D) or >= 2, got {self.population}"
            )
        check_positive(self, "sigma0", "init_std")
        check_common(self)


@dataclass
class RandomConfig:
    """Random search: every generation ``batch_size`` fresh genomes.

    Attributes:
        batch_size: genomes per generation.
        init_std: genomes ~ N(0, init_std^2), clipped to the bounds (NS's initial population).
        genome_low: lower gene bound.
        genome_high: upper gene bound.
        space: behaviour space; must be ``ground_truth`` (used only for the passive grid).
    """

    batch_size: int = 200
    init_std: float = 1.0
    genome_low: float = -5.0
    genome_high: float = 5.0
    space: str = "ground_truth"

    def __post_init__(self) -> None:
        check_positive(self, "batch_size", "init_std")
        check_common(self)


# -- CMA-ES and random search ----------------------------------------------------------------
class RecordedSearch(Algorithm):
    """A passive grid (``elites``) and the record of successive bests (``best``)."""

    name = "recorded"
    main_archive = "elites"

    def _setup(self, genome_size, measure_dim, env_spec, device, seed, archive_seed) -> None:
        check_measures(measure_dim, env_spec)
        self.genome_size = int(genome_size)
        self.device = torch.device(device)
        self.generation = 0
        self.grid = GridElites(solution_dim=genome_size, env_spec=env_spec, seed=archive_seed)
        self.elites = elites_archive("elites", genome_size, env_spec, self.device, seed + 1)
        self.best = elites_archive("best", genome_size, env_spec, self.device, seed + 2)

    @property
    def archives(self) -> dict[str, Archive]:
        return {"elites": self.elites, "best": self.best}

    def _record(self, solutions: np.ndarray, outcomes: Outcomes) -> None:
        objective, measures, reward_area = outcome_arrays(outcomes)
        self.grid.add(solutions, objective, measures, reward_area)
        self.grid.export(self.elites)
        top = int(np.argmax(objective))  # first of equal bests
        if self.best.empty or objective[top] > float(self.best.objectives[-1]):
            gt = outcomes.descriptor[top : top + 1].float()
            self.best.add(
                torch.from_numpy(solutions[top : top + 1]).float(),
                outcomes.fitness[top : top + 1].float(),
                gt,
                novelty=torch.zeros(1),
                ground_truth=gt,
                reward_area=outcomes.reward_area[top : top + 1],
            )

    def _best_value(self) -> float | None:
        return None if self.best.empty else float(self.best.objectives[-1])

    def _load_archives(self, archives: dict[str, Archive]) -> None:
        self.elites = archives["elites"]
        self.best = archives["best"]


class CMAES(RecordedSearch):
    """Plain CMA-ES on reward (pyribs's CMAEvolutionStrategy), with restarts.

    mu = population // 2 parents with log weights (CMA-ES's standard selection); when
    ``check_stop`` fires (condition number, tiny step size, or all rewards of the generation
    equal, which sparse rewards make common) it restarts from x0 ~ N(0, init_std^2) clipped.
    Bounds are handled by pyribs's resampling.
    """

    name = "cma-es"

    def __init__(
        self,
        config: CMAESConfig,
        *,
        genome_size: int,
        measure_dim: int,
        env_spec: dict,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        self.config = config
        archive_seed, opt_seed, _ = np.random.SeedSequence(int(seed)).spawn(3)
        self._setup(genome_size, measure_dim, env_spec, device, seed, archive_seed)
        d = self.genome_size
        self.opt = CMAEvolutionStrategy(
            sigma0=config.sigma0,
            solution_dim=d,
            batch_size=config.population or None,
            seed=opt_seed,
            dtype=np.float64,
            lower_bounds=np.full(d, config.genome_low),
            upper_bounds=np.full(d, config.genome_high),
        )
        self.opt.reset(np.zeros(d))
        self._generator = torch.Generator().manual_seed(int(seed))
        self.restarts = 0
        self._asked: np.ndarray | None = None
        self._count = 0

    def ask(self, max_count: int | None = None) -> torch.Tensor:
        """One CMA-ES population, cut to ``max_count``."""
        solutions = np.array(self.opt.ask(), dtype=np.float64)
        count = len(solutions) if max_count is None else max(0, min(len(solutions), max_count))
        self._asked, self._count = solutions, count
        return torch.from_numpy(solutions[:count]).float().to(self.device)

    def tell(self, genomes: torch.Tensor, outcomes: Outcomes, descriptors: torch.Tensor) -> dict:
        """Record the genomes; a whole population also updates CMA-ES (a cut one does not)."""
        if self._asked is None or len(genomes) != self._count:
            raise RuntimeError("tell() must follow ask() with the genomes it returned")
        solutions = self._asked[: len(genomes)]
        self._record(solutions, outcomes)
        if len(genomes) == len(self._asked):
            fitness = outcomes.fitness.detach().cpu().double().numpy()
            order = np.argsort(-fitness, kind="stable")
            self.opt.tell(order, fitness, self.opt.batch_size // 2)
            if self.opt.check_stop(fitness[order]):
                cfg = self.config
                x0 = torch.randn(self.genome_size, generator=self._generator) * cfg.init_std
                self.opt.reset(x0.clamp_(cfg.genome_low, cfg.genome_high).double().numpy())
                self.restarts += 1
        self._asked = None
        self.generation += 1
        return {
            "generation": self.generation,
            "restarts": self.restarts,
            "sigma": float(self.opt.sigma),
            "best_objective": self._best_value(),
        }

    def state_dict(self) -> dict:
        tensors: dict[str, torch.Tensor] = {"generator": self._generator.get_state()}
        meta = {
            "generation": self.generation,
            "restarts": self.restarts,
            "config": asdict(self.config),
            "ribs_version": ribs.__version__,
            "grid": self.grid.state("grid.", tensors),
            "opt": cma_state(self.opt, "opt.", tensors),
        }
        return {"tensors": tensors, "meta": meta}

    def load_state_dict(self, state: dict, archives: dict[str, Archive]) -> None:
        tensors, meta = state["tensors"], state["meta"]
        self.grid.load("grid.", tensors, meta["grid"])
        load_cma_state(self.opt, "opt.", tensors, meta["opt"])
        self._generator.set_state(tensors["generator"])
        self.generation = int(meta["generation"])
        self.restarts = int(meta["restarts"])
        self._load_archives(archives)
        self._asked = None


class RandomSearch(RecordedSearch):
    """Random search: ``batch_size`` fresh genomes ~ N(0, init_std^2), clipped, per generation."""

    name = "random"

    def __init__(
        self,
        config: RandomConfig,
        *,
        genome_size: int,
        measure_dim: int,
        env_spec: dict,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        self.config = config
        archive_seed, _, _ = np.random.SeedSequence(int(seed)).spawn(3)
        self._setup(genome_size, measure_dim, env_spec, device, seed, archive_seed)
        self._generator = torch.Generator().manual_seed(int(seed))

    def ask(self, max_count: int | None = None) -> torch.Tensor:
        cfg = self.config
        count = cfg.batch_size if max_count is None else max(0, min(cfg.batch_size, max_count))
        genomes = torch.randn(cfg.batch_size, self.genome_size, generator=self._generator)
        genomes = (genomes * cfg.init_std).clamp_(cfg.genome_low, cfg.genome_high)
        return genomes[:count].to(self.device)

    def tell(self, genomes: torch.Tensor, outcomes: Outcomes, descriptors: torch.Tensor) -> dict:
        self._record(genomes.detach().cpu().double().numpy(), outcomes)
        self.generation += 1
        return {"generation": self.generation, "best_objective": self._best_value()}

    def state_dict(self) -> dict:
        tensors: dict[str, torch.Tensor] = {"generator": self._generator.get_state()}
        meta = {
            "generation": self.generation,
            "config": asdict(self.config),
            "ribs_version": ribs.__version__,
            "grid": self.grid.state("grid.", tensors),
        }
        return {"tensors": tensors, "meta": meta}

    def load_state_dict(self, state: dict, archives: dict[str, Archive]) -> None:
        tensors, meta = state["tensors"], state["meta"]
        self.grid.load("grid.", tensors, meta["grid"])
        self._generator.set_state(tensors["generator"])
        self.generation = int(meta["generation"])
        self._load_archives(archives)
