"""Two novelty-based multi-objective baselines of the SERENE/STAX papers (Paolo et al.), on the
Novelty Search skeleton of :mod:`qd.algorithms.ns` (population 100, 2 offspring per parent,
``clip(g + N(0, 0.05), -5, 5)``, k = 15, 5 random offspring archived per generation). Only the
choice of the next population differs: NSGA-II survivor selection (Deb et al. 2002) over
population + offspring, on two maximised objectives:

* ``nslc``, Novelty Search with Local Competition (Lehman & Stanley 2011): (novelty, local
  competition), LC = how many of the individual's k = 15 nearest neighbours have a strictly
  lower reward. The neighbours are those of the novelty, in the same reference set
  R = novelty archive + population + offspring (before this generation's archive insertion),
  self excluded, as in the paper and the authors' code (GPaolo/STAX ``core/evolvers/nslc.py``).
* ``nsga2``: (novelty, reward).

Selection (:func:`qd.algorithms.pareto.nsga2_select`): whole non-dominated fronts, best first,
the front that does not fit cut by decreasing crowding distance (ties: lower row first, rows
being population then offspring). No state beyond NS's, so NS's checkpoints are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from qd.algorithms.ns import NoveltySearch, NSConfig
from qd.algorithms.pareto import local_competition, nsga2_order


@dataclass
class NSLCConfig(NSConfig):
    """NSLC settings: :class:`NSConfig`'s (the papers' NS defaults); ``k_neighbors`` is also
    the local-competition neighbourhood."""


@dataclass
class NSGA2Config(NSConfig):
    """NSGA-II on (novelty, reward) settings: :class:`NSConfig`'s (the papers' NS defaults)."""


def _pareto_survivors(objectives: torch.Tensor, n: int) -> tuple[torch.Tensor, dict]:
    order, ranks, _ = nsga2_order(objectives)
    chosen = order[:n]
    return chosen, {
        "front0_size": int((ranks == 0).sum()),
        "fronts_used": int(ranks[chosen].max()) + 1 if chosen.numel() else 0,
    }


class NSLC(NoveltySearch):
    """Novelty Search with Local Competition: NS whose next population is NSGA-II's choice on
    (novelty, local competition). See the module docstring."""

    name = "nslc"

    def _select_survivors(
        self, union: dict[str, torch.Tensor], novelty: torch.Tensor
    ) -> tuple[torch.Tensor, dict]:
        n_archive = len(self.archive)
        reference = torch.cat([self.archive.descriptors, union["measures"]], 0)
        reference_rewards = torch.cat([self.archive.objectives, union["objective"]], 0)
        local = local_competition(
            union["measures"],
            union["objective"],
            reference,
            reference_rewards,
            self.config.k_neighbors,
            self_index=n_archive + torch.arange(len(novelty), device=novelty.device),
        )
        objectives = torch.stack([novelty.float(), local.float()], 1)
        chosen, info = _pareto_survivors(objectives, self.config.pop_size)
        info["local_competition_mean"] = float(local[chosen].float().mean())
        info["local_competition_max"] = int(local.max())
        return chosen, info


class NSGA2(NoveltySearch):
    """NSGA-II on (novelty, reward): NS whose next population is NSGA-II's choice on those two
    objectives. See the module docstring."""

    name = "nsga2"

    def _select_survivors(
        self, union: dict[str, torch.Tensor], novelty: torch.Tensor
    ) -> tuple[torch.Tensor, dict]:
        objectives = torch.stack([novelty.float(), union["objective"].float()], 1)
        return _pareto_survivors(objectives, self.config.pop_size)
