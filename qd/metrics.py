"""Run metrics on the environment's ground-truth grid (the papers' coverage and uniformity).

Binning uses a pyribs :class:`~ribs.archives.GridArchive` (its ``index_of``) over the env's
descriptor bounds and grid shape, so out-of-bounds descriptors land in the edge cells as in
pyribs. ``Tracker`` keeps what is needed over *all evaluated* individuals (cell counts, best
fitness per cell, running max reward per reward area) as tensors, so it checkpoints exactly.

* coverage: filled cells / all cells.
* uniformity: 1 - Jensen-Shannon distance (base 2) between the distribution of individuals
  over the filled cells and the uniform distribution over those cells (as in the evolvability
  paper's definition); 1 when every filled cell holds the same number of individuals.
* QD-score: sum over filled cells of (best fitness - ``qd_score_offset``).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from ribs.archives import GridArchive

from envs.base import MAX_GRID_CELLS


@functools.lru_cache(maxsize=16)
def _grid(shape: tuple[int, ...], low: tuple[float, ...], high: tuple[float, ...]) -> GridArchive:
    return GridArchive(solution_dim=1, dims=list(shape), ranges=list(zip(low, high, strict=True)))


def grid_cells(descriptors: torch.Tensor | np.ndarray, spec: dict) -> torch.Tensor:
    """Cell index ``[N]`` (long) of ground-truth descriptors on the env's coverage grid."""
    grid = _grid(
        tuple(spec["grid_shape"]), tuple(spec["descriptor_low"]), tuple(spec["descriptor_high"])
    )
    values = torch.as_tensor(descriptors).detach().cpu().double().numpy()
    if len(values) == 0:
        return torch.zeros(0, dtype=torch.long)
    return torch.from_numpy(grid.index_of(values).astype(np.int64))


def uniformity(counts: torch.Tensor) -> float:
    """1 - JS distance (base 2) between counts over filled cells and uniform over them."""
    filled = counts[counts > 0].double()
    if filled.numel() == 0:
        return 0.0
    p = filled / filled.sum()
    q = torch.full_like(p, 1.0 / p.numel())
    m = 0.5 * (p + q)
    js = 0.5 * (p * torch.log2(p / m)).sum() + 0.5 * (q * torch.log2(q / m)).sum()
    return float(1.0 - math.sqrt(max(float(js), 0.0)))


def cell_values(ground_truth, objectives, spec: dict, *, value: str = "reward") -> torch.Tensor:
    """Per cell of the coverage grid (shape ``spec["grid_shape"]``, float64): the best
    objective (``value="reward"``) or the number of individuals (``"count"``); NaN where empty.
    """
    if value not in ("reward", "count"):
        raise ValueError(f"value must be 'reward' or 'count', got {value!r}")
    n_cells = math.prod(spec["grid_shape"])
    cells = grid_cells(ground_truth, spec)
    if value == "count":
        values = torch.bincount(cells, minlength=n_cells).double()
        values[values == 0] = float("nan")
    else:
        values = torch.full((n_cells,), -float("inf"), dtype=torch.float64)
        objectives = torch.as_tensor(objectives).detach().cpu().double()
        values.scatter_reduce_(0, cells, objectives, "amax")
        values[torch.isinf(values)] = float("nan")
    return values.view(*spec["grid_shape"])


def coverage_of(descriptors: torch.Tensor, spec: dict) -> float:
    """Share of grid cells holding at least one of ``descriptors``."""
    cells = grid_cells(descriptors, spec)
    return float(torch.unique(cells).numel() / math.prod(spec["grid_shape"]))


class Tracker:
    """Running metrics over every evaluated individual of a run.

    Coverage and uniformity count the *exploring* individuals only (every individual of NS and
    the baselines; SERENE/STAX's NS individuals, not their emitters' offspring, as the papers
    count them); max reward per area and the QD-score count everything evaluated.

    Args:
        spec: the env spec as a dict (``EnvSpec.to_dict()``).
        qd_score_offset: subtracted from fitness in the QD-score (rewards here are >= 0).
    """

    def __init__(self, spec: dict, *, qd_score_offset: float = 0.0) -> None:
        self.spec = spec
        self.n_cells = math.prod(spec["grid_shape"])
        if self.n_cells > MAX_GRID_CELLS:
            raise ValueError(
                f"env {spec.get('name')!r}: its coverage grid {list(spec['grid_shape'])} has "
                f"{float(self.n_cells):.3g} cells (at most {MAX_GRID_CELLS:,}); give it fewer "
                "cells per dimension (e.g. env.grid_cells) or a descriptor with fewer dimensions"
            )
        self.qd_score_offset = float(qd_score_offset)
        self.counts = torch.zeros(self.n_cells, dtype=torch.int64)
        self.explored = torch.zeros(self.n_cells, dtype=torch.int64)
        self.best = torch.full((self.n_cells,), -float("inf"), dtype=torch.float64)
        self.max_reward = torch.zeros(max(spec["reward_areas"], 0), dtype=torch.float64)
        self.best_return = torch.tensor(-float("inf"), dtype=torch.float64)
        self.evaluations = 0

    def update(self, ground_truth, fitness, reward_area, *, exploring: bool = True) -> None:
        """Account for one batch of evaluated individuals (``exploring``: see the class doc)."""
        cells = grid_cells(ground_truth, self.spec)
        fitness = torch.as_tensor(fitness).detach().cpu().double()
        area = torch.as_tensor(reward_area).detach().cpu().long()
        batch_counts = torch.bincount(cells, minlength=self.n_cells)
        self.counts += batch_counts
        if exploring:
            self.explored += batch_counts
        self.best.scatter_reduce_(0, cells, fitness, "amax")
        if self.max_reward.numel():
            inside = area >= 0
            self.max_reward.scatter_reduce_(0, area[inside], fitness[inside], "amax")
        finite = fitness[torch.isfinite(fitness)]
        if finite.numel():
            self.best_return = torch.maximum(self.best_return, finite.max())
        self.evaluations += len(fitness)

    @property
    def coverage(self) -> float:
        """Share of cells visited by an exploring individual."""
        return float((self.explored > 0).sum() / self.n_cells)

    @property
    def uniformity(self) -> float:
        """Uniformity of the exploring individuals over the filled cells."""
        return uniformity(self.explored)

    @property
    def max_return(self) -> float | None:
        """Highest finite return evaluated so far (None before the first one)."""
        value = float(self.best_return)
        return value if math.isfinite(value) else None

    @property
    def qd_score(self) -> float:
        """Sum over filled cells of best fitness minus the offset."""
        filled = self.counts > 0
        return float((self.best[filled] - self.qd_score_offset).sum())

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Everything needed to resume, as tensors."""
        return {
            "counts": self.counts.clone(),
            "explored": self.explored.clone(),
            "best": self.best.clone(),
            "max_reward": self.max_reward.clone(),
            "best_return": self.best_return.clone(),
            "evaluations": torch.tensor(self.evaluations),
        }

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`state_tensors`."""
        self.counts = tensors["counts"].clone()
        self.explored = tensors.get("explored", self.counts).clone()
        self.best = tensors["best"].clone()
        self.max_reward = tensors["max_reward"].clone()
        self.best_return = tensors.get("best_return", self.best_return).clone()
        self.evaluations = int(tensors["evaluations"])
