"""The best individuals a run has evaluated: the ``champions`` archive of every run.

One row per reward area reached (the individual with the highest return that ended in it) and
one row for the best individual that ended outside every area (``reward_area`` -1; on an env
without reward areas, such as MountainCar, this is the best return overall). Rows are sorted by
``reward_area``; on equal returns the individual found first is kept. The best return overall
is the largest ``objective`` of the archive (the ``max_return`` metric).
"""

from __future__ import annotations

import torch

from qd.archive import Archive

NAME = "champions"


class Champions:
    """Keeps the ``champions`` archive up to date from every evaluated batch.

    Args:
        genome_size: size of the genomes.
        env_spec: the env spec as a dict (``descriptor_size``, ``reward_areas``).
        seed: seed of the archive's generator (unused by its ``all`` insertion rule).
    """

    def __init__(self, *, genome_size: int, env_spec: dict, seed: int = 0) -> None:
        size = int(env_spec["descriptor_size"])
        self.archive = Archive(
            solution_dim=genome_size,
            measure_dim=size,
            ground_truth_dim=size,
            env_spec=env_spec,
            seed=seed,
            initial_capacity=max(1, int(env_spec.get("reward_areas", 0)) + 1),
            name=NAME,
        )

    @property
    def max_return(self) -> float | None:
        """Highest return evaluated so far (None before the first finite one)."""
        if self.archive.empty:
            return None
        return float(self.archive.objectives.max())

    def update(
        self,
        genomes: torch.Tensor,
        fitness: torch.Tensor,
        reward_area: torch.Tensor,
        descriptor: torch.Tensor,
    ) -> None:
        """Offer a batch of evaluated individuals (rows with a non-finite value are skipped)."""
        fitness = fitness.detach().float()
        area = reward_area.detach().long().clamp(min=-1)
        descriptor = descriptor.detach().float()
        valid = torch.isfinite(fitness) & torch.isfinite(descriptor).all(1)
        if not bool(valid.any()):
            return
        # the batch's best row of each slot (slot = reward area + 1; 0 = outside every area)
        slot = area + 1
        slots = int(slot.max()) + 1
        score = torch.where(valid, fitness, torch.full_like(fitness, -float("inf")))
        winners = _first_max_per_slot(score, slot, valid, slots)
        device = self.archive.device
        old = self.archive.rows()
        candidates = {
            "solution": torch.cat(
                [old["solution"], genomes[winners.to(genomes.device)].to(device)]
            ),
            "objective": torch.cat([old["objective"], fitness[winners].to(device)]),
            "ground_truth": torch.cat([old["ground_truth"], descriptor[winners].to(device)]),
            "reward_area": torch.cat([old["reward_area"], area[winners].to(device)]),
        }
        total = len(candidates["objective"])
        keep = _first_max_per_slot(
            candidates["objective"],
            candidates["reward_area"] + 1,
            torch.ones(total, dtype=torch.bool, device=device),
            max(slots, int(candidates["reward_area"].max()) + 2),
        )
        if torch.equal(keep, torch.arange(len(self.archive), device=device)):
            return  # no slot improved
        self.archive.clear()
        self.archive.add(
            candidates["solution"][keep],
            candidates["objective"][keep],
            candidates["ground_truth"][keep],
            novelty=torch.zeros(len(keep), device=device),
            ground_truth=candidates["ground_truth"][keep],
            reward_area=candidates["reward_area"][keep],
        )


def _first_max_per_slot(
    score: torch.Tensor, slot: torch.Tensor, valid: torch.Tensor, slots: int
) -> torch.Tensor:
    """Index of the first row with the highest ``score`` in each occupied slot, by slot."""
    best = torch.full((slots,), -float("inf"), dtype=score.dtype, device=score.device)
    best = best.scatter_reduce(0, slot[valid], score[valid], "amax")
    position = torch.arange(len(score), device=score.device)
    top = valid & (score == best[slot])
    first = torch.full((slots,), len(score), dtype=torch.long, device=score.device)
    first = first.scatter_reduce(0, slot[top], position[top], "amin")
    return first[first < len(score)]
