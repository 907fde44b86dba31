"""``qd run evotorch:<SEARCHER>``: an EvoTorch searcher as a qdtorch ask/tell algorithm.

The searcher (PGPE, SNES, XNES, CEM, CMAES, GA or MAPElites of ``evotorch.algorithms``) runs
its own ``step()`` on an :class:`~qd.integrations.evotorch.EnvProblem` whose evaluations are
handed out to the run loop (:class:`~qd.integrations.evotorch_driver.SteppedSearcher`): ``ask``
returns the batch the step waits for, ``tell`` answers it. Like ``cma-es`` and ``random``,
every evaluated genome is recorded in the passive grid ``elites`` (the env's ground-truth
grid, the run's main archive) and successive bests in ``best``; the run adds ``champions``.

The last batch is cut to the budget: the cut rows are recorded, and the rest of the batch
would be asked next (a step only ends once its whole batch is told). Checkpoints are taken
between steps and restore the searcher exactly (see :mod:`qd.integrations.evotorch_driver`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import evotorch
import numpy as np
import ribs
import torch

from qd.algorithms.base import Variant
from qd.algorithms.reward_search import RecordedSearch
from qd.archive import Archive
from qd.evaluation import Outcomes
from qd.integrations.evotorch import SEARCHERS, EnvProblem, make_searcher
from qd.integrations.evotorch_driver import (
    Handoff,
    SteppedSearcher,
    load_searcher_state,
    searcher_state,
)

logging.getLogger("evotorch").setLevel(logging.WARNING)  # its INFO lines would flood run logs

PREFIX = "evotorch:"
OPTIMIZERS = ("default", "none", "clipup", "adam", "sgd")
RANKINGS = ("default", "centered", "linear", "nes", "raw")
GAUSSIAN = ("PGPE", "SNES", "XNES")
DEFAULTS: dict[str, dict] = {
    "PGPE": {
        "popsize": 200,
        "stdev_init": 0.5,
        "center_learning_rate": 0.1,
        "stdev_learning_rate": 0.1,
        "stdev_max_change": 0.2,
        "optimizer": "clipup",
        "ranking_method": "centered",
    },
    "SNES": {"stdev_init": 0.5, "optimizer": "none", "ranking_method": "nes"},
    "XNES": {"stdev_init": 0.5, "optimizer": "none", "ranking_method": "nes"},
    "CEM": {"popsize": 200, "stdev_init": 0.5, "parenthood_ratio": 0.1},
    "CMAES": {"stdev_init": 0.5},
    "GA": {"popsize": 200, "mutation_stdev": 0.05},
    "MAPElites": {"mutation_stdev": 0.05},
}
"""Each searcher's defaults; a field left at 0 / ``"default"`` / None and missing here keeps
EvoTorch's own default (e.g. SNES's popsize ``4 + 3 ln D``, learning rates)."""
APPLIES = {
    "popsize": ("PGPE", "SNES", "XNES", "CEM", "CMAES", "GA"),
    "stdev_init": ("PGPE", "SNES", "XNES", "CEM", "CMAES"),
    "center_learning_rate": GAUSSIAN,
    "stdev_learning_rate": GAUSSIAN,
    "stdev_max_change": ("PGPE", "SNES", "XNES", "CEM"),
    "optimizer": GAUSSIAN,
    "ranking_method": GAUSSIAN,
    "parenthood_ratio": ("CEM",),
    "mutation_stdev": ("GA", "MAPElites"),
    "re_evaluate": ("GA", "MAPElites"),
    "bins": ("MAPElites",),
}


@dataclass
class EvoTorchConfig:
    """Settings of an EvoTorch searcher (0 / ``"default"`` / None: :data:`DEFAULTS`).

    Attributes:
        searcher: EvoTorch class name, set by the algorithm name ``evotorch:<SEARCHER>``.
        popsize: solutions per step (PGPE: even, mirrored pairs; MAP-Elites: one per cell).
        stdev_init: initial standard deviation of every gene (distribution searchers).
        center_learning_rate: step size of the center (PGPE, SNES, XNES).
        stdev_learning_rate: step size of the standard deviation (PGPE, SNES, XNES).
        stdev_max_change: most relative change of the stdev per step (PGPE, SNES, XNES, CEM).
        optimizer: center optimizer ``clipup``, ``adam``, ``sgd`` or ``none`` (PGPE, SNES,
            XNES).
        ranking_method: fitness shaping ``centered``, ``linear``, ``nes`` or ``raw``.
        parenthood_ratio: fraction of the population that refits CEM's distribution.
        mutation_stdev: Gaussian mutation of GA and MAP-Elites.
        re_evaluate: GA / MAP-Elites evaluate the parents again every step (for envs with a
            random reset; the bundled envs are deterministic).
        bins: MAP-Elites cells per descriptor dimension (default: the env's ``grid_shape``).
        init_bound: GA / MAP-Elites initial genomes are uniform in ``[-init_bound,
            init_bound]``; distribution searchers start centred on 0.
        space: behaviour space; must be ``ground_truth`` (the descriptor EvoTorch sees).
    """

    searcher: str = "PGPE"
    popsize: int = 0
    stdev_init: float = 0.0
    center_learning_rate: float = 0.0
    stdev_learning_rate: float = 0.0
    stdev_max_change: float = 0.0
    optimizer: str = "default"
    ranking_method: str = "default"
    parenthood_ratio: float = 0.0
    mutation_stdev: float = 0.0
    re_evaluate: bool = False
    bins: list[int] | None = None
    init_bound: float = 1.0
    space: str = "ground_truth"

    def __post_init__(self) -> None:
        if self.searcher not in SEARCHERS:
            raise ValueError(
                f"unknown EvoTorch searcher {self.searcher!r}; known: {', '.join(SEARCHERS)} "
                "(use evotorch:<SEARCHER>)"
            )
        defaults = EvoTorchConfig.__dataclass_fields__
        for name, searchers in APPLIES.items():
            if getattr(self, name) != defaults[name].default and self.searcher not in searchers:
                raise ValueError(
                    f"{name} does not apply to {self.searcher} (only {', '.join(searchers)})"
                )
        for name in ("popsize", "stdev_init", "center_learning_rate", "stdev_learning_rate"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0: default), got {getattr(self, name)}")
        for name in ("stdev_max_change", "mutation_stdev"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0: default), got {getattr(self, name)}")
        if self.init_bound <= 0:
            raise ValueError(f"init_bound must be > 0, got {self.init_bound}")
        if not 0 <= self.parenthood_ratio < 1:
            raise ValueError(f"parenthood_ratio must be in [0, 1), got {self.parenthood_ratio}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.ranking_method not in RANKINGS:
            raise ValueError(f"ranking_method must be one of {', '.join(RANKINGS)}")
        if self.bins is not None and (
            not isinstance(self.bins, list)
            or not all(isinstance(b, int) and b >= 1 for b in self.bins)
        ):
            raise ValueError(f"bins must be a list of ints >= 1 like [10,10], got {self.bins!r}")
        popsize = self.resolved()["popsize"]
        if self.searcher == "PGPE" and popsize % 2:
            raise ValueError(f"PGPE samples mirrored pairs: popsize must be even, got {popsize}")
        if self.searcher in ("CEM", "GA") and popsize < 2:
            raise ValueError(f"{self.searcher} needs popsize >= 2, got {popsize}")
        if self.searcher == "CEM" and int(popsize * self.resolved()["parenthood_ratio"]) < 2:
            raise ValueError(
                "CEM refits its distribution on int(popsize * parenthood_ratio) parents, which "
                f"must be >= 2 (a standard deviation), got popsize {popsize}"
            )
        if self.space != "ground_truth":
            raise ValueError(
                f"EvoTorch searchers see the env's ground-truth descriptor: space must be "
                f"'ground_truth', got {self.space!r}"
            )

    def resolved(self) -> dict:
        """The settings with this searcher's :data:`DEFAULTS` in place of 0 / ``"default"``."""
        values = asdict(self)
        for key, value in DEFAULTS[self.searcher].items():
            if values[key] in (0, 0.0, "default", None):
                values[key] = value
        return values


class EvoTorchVariant(Variant):
    """The registry entry of ``evotorch:<SEARCHER>`` (``searcher`` is fixed by the name)."""

    def make_config(self, overrides: dict | None = None):
        searcher = self.defaults["searcher"]
        if (overrides or {}).get("searcher", searcher) != searcher:
            raise ValueError(
                f"the searcher is named by the algorithm ({PREFIX}{searcher}); "
                "use evotorch:<SEARCHER> instead of --set searcher=..."
            )
        return super().make_config(overrides)


def variant(name: str) -> EvoTorchVariant:
    """The registry entry of ``evotorch:<SEARCHER>`` (``name`` is the searcher part)."""
    if name not in SEARCHERS:
        raise KeyError(
            f"unknown EvoTorch searcher {name!r} in {PREFIX}{name}; known: "
            f"{', '.join(PREFIX + s for s in SEARCHERS)}"
        )
    return EvoTorchVariant(EvoTorchConfig, EvoTorchSearch, {"searcher": name}, f"EvoTorch's {name}")


class _RunProblem(EnvProblem):
    """An :class:`EnvProblem` on the run's env spec whose evaluator is a handoff."""

    def __init__(self, *, genome_size, descriptor_size, handoff, seed, device, init_bound):
        self.env, self.policy, self.evaluator = None, None, handoff
        self.on_evaluated = None
        self.last_outcomes = None
        evotorch.Problem.__init__(
            self,
            "max",
            solution_length=int(genome_size),
            initial_bounds=(-float(init_bound), float(init_bound)),
            dtype=torch.float32,
            device=device,
            eval_data_length=int(descriptor_size),
            seed=int(seed),
            store_solution_stats=False,
        )


class EvoTorchSearch(RecordedSearch):
    """An EvoTorch searcher driven ask/tell, everything it evaluates recorded in ``elites``."""

    name = "evotorch"

    def __init__(
        self,
        config: EvoTorchConfig,
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
        self.handoff = Handoff()
        self.problem = _RunProblem(
            genome_size=genome_size,
            descriptor_size=measure_dim,
            handoff=self.handoff,
            seed=seed,
            device=self.device,
            init_bound=config.init_bound,
        )
        searcher = make_searcher(config, self.problem, env_spec)
        self.driver = SteppedSearcher(searcher, self.handoff, config.searcher)
        self._batch: torch.Tensor | None = None  # the batch being told, maybe in cut parts
        self._parts: list[Outcomes] = []
        self._done = 0
        self._asked = 0

    @property
    def searcher(self):
        """The EvoTorch searcher object."""
        return self.driver.searcher

    def ask(self, max_count: int | None = None) -> torch.Tensor:
        """The rest of the batch the searcher's step waits for, cut to ``max_count``."""
        if self._batch is None:
            self._batch, self._parts, self._done = self.driver.next_batch(), [], 0
        left = len(self._batch) - self._done
        count = left if max_count is None else max(0, min(left, max_count))
        self._asked = count
        return self._batch[self._done : self._done + count].to(self.device)

    def tell(self, genomes: torch.Tensor, outcomes: Outcomes, descriptors) -> dict:
        """Record the genomes; a completed batch goes back to the searcher's step."""
        if self._batch is None or len(genomes) != self._asked:
            raise RuntimeError("tell() must follow ask() with the genomes it returned")
        self._record(genomes.detach().cpu().double().numpy(), outcomes)
        self._parts.append(outcomes)
        self._done += len(genomes)
        if self._done == len(self._batch):
            self._batch = None
            self.driver.answer(Outcomes.cat(self._parts))
            self._parts = []
        self.generation += 1
        line = {
            "generation": self.generation,
            "searcher_steps": int(self.searcher.step_count),
            "best_objective": self._best_value(),
            "mean_return": float(outcomes.fitness.float().mean()),
        }
        stdev = getattr(getattr(self.searcher, "_distribution", None), "sigma", None)
        if stdev is None and hasattr(self.searcher, "C"):
            stdev = self.searcher.sigma * self.searcher.C.diagonal().sqrt()
        if stdev is not None:
            line["stdev_mean"] = float(stdev.float().mean())
        return line

    def ready_for_checkpoint(self) -> bool:
        """Between steps only (no batch handed out and not yet answered)."""
        return self._batch is None and not self.driver.mid_step

    def state_dict(self) -> dict:
        if not self.ready_for_checkpoint():
            raise RuntimeError("an EvoTorch searcher is checkpointed between steps only")
        tensors: dict[str, torch.Tensor] = {}
        meta = {
            "generation": self.generation,
            "config": asdict(self.config),
            "evotorch_version": evotorch.__version__,
            "ribs_version": ribs.__version__,
            "grid": self.grid.state("grid.", tensors),
            "searcher": searcher_state(self.searcher, "searcher.", tensors),
        }
        return {"tensors": tensors, "meta": meta}

    def load_state_dict(self, state: dict, archives: dict[str, Archive]) -> None:
        tensors, meta = state["tensors"], state["meta"]
        if meta["config"] != asdict(self.config):
            raise ValueError("checkpoint was written with other EvoTorch settings")
        self.grid.load("grid.", tensors, meta["grid"])
        load_searcher_state(self.searcher, "searcher.", tensors, meta["searcher"])
        self.generation = int(meta["generation"])
        self._load_archives(archives)
