"""STAX (Paolo et al., 2021): SERENE in the behaviour space TAXONS's autoencoder learns.

Every evaluated individual (NS offspring, emitter offspring; candidates are NS offspring) is
described by the AE's latent code of its final frame and scored for surprise
(:class:`qd.behaviour.AutoencoderSpace`). The exploration chunks are TAXONS's Novelty Search
(population by novelty or surprise drawn 50/50 per generation, or Pareto fronts on both for
STAX-P); the novelty reference set (population + offspring + novelty archive + reward archive),
the emitters and the meta-scheduler are SERENE's (:mod:`qd.algorithms.serene`).

The AE is retrained after exploration chunks 1, 3, 6, 10, ... on the stored frames of the
novelty archive, the population, the reward archive and the latest offspring, then every stored
individual is re-described from its stored frames: every archive of SERENE (novelty, population,
reward, candidates, emitter ancestors, emitter buffers). Nothing is re-evaluated or dropped.
``train_ae=False`` is STAX-NT (untrained AE); ``space=autoencoder:frames=F`` the multi-frame
variant.

Deviation: the novelty-selecting emitter type is not offered here, because its parents keep
descriptors inside the emitter that would go stale at each retraining; the elitist (default)
and CMA-ES emitters select on reward only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from qd.algorithms.serene import Serene, SereneConfig
from qd.algorithms.taxons import (
    LearnedSpaceMixin,
    Taxons,
    TaxonsConfig,
    describe_outcomes,
)
from qd.archive import Archive
from qd.behaviour.learned import AutoencoderSpace
from qd.evaluation import Outcomes


@dataclass
class StaxConfig(TaxonsConfig, SereneConfig):
    """STAX settings: SERENE's fields (chunks, emitters, scheduler) and TAXONS's (space,
    selection, AE training)."""

    def __post_init__(self) -> None:
        super().__post_init__()  # TAXONS's checks, then SERENE's (MRO)
        if self.emitter_type == "novelty":
            raise ValueError(
                "STAX supports emitter_type elitist or cma (novelty-selecting emitters keep "
                "descriptors that go stale when the autoencoder is retrained)"
            )


class Stax(LearnedSpaceMixin, Serene):
    """Ask/tell STAX and its variants (see the module docstring)."""

    name = "stax"
    needs_space = True
    describes_itself = True

    def __init__(
        self,
        config: StaxConfig,
        *,
        genome_size: int,
        measure_dim: int,
        env_spec: dict,
        space: AutoencoderSpace,
        device="cpu",
        seed: int = 0,
    ) -> None:
        if not isinstance(space, AutoencoderSpace):
            raise TypeError("STAX needs an AutoencoderSpace")
        self.space = space
        super().__init__(
            config,
            genome_size=genome_size,
            measure_dim=measure_dim,
            env_spec=env_spec,
            device=device,
            seed=seed,
        )
        self._init_learning()
        self._described: tuple | None = None

    def _make_ns(self, config: StaxConfig, **kwargs) -> Taxons:
        ns = Taxons(config, space=self.space, **kwargs)
        ns.learns = False  # STAX trains, re-encodes and checkpoints the space
        return ns

    def ae_archives(self) -> list[Archive]:
        return [self.ns.archive, self.ns.population, self.reward_archive]

    def _fields(self, outcomes: Outcomes, genomes, descriptors) -> dict[str, torch.Tensor]:
        rows = super()._fields(outcomes, genomes, descriptors)
        frames, surprise = self._described
        rows["frames"], rows["surprise"] = frames, surprise
        return rows

    def _tell_ns(self, genomes, outcomes, descriptors, rows: dict) -> dict:
        info = self.ns.tell_described(
            genomes,
            outcomes,
            rows["frames"],
            descriptors,
            rows["surprise"],
            extra_reference=self.reward_archive.descriptors,
        )
        self._pending_frames = self.ns._pending_frames
        return info

    def tell(self, genomes: torch.Tensor, outcomes: Outcomes, descriptors=None) -> dict:
        """Describe the episodes with the AE, run SERENE's step, retrain on schedule."""
        frames, latents, surprise = describe_outcomes(self.space, outcomes, self.device)
        self._described = (frames, surprise)
        exploring = self._stage is not None and self._stage[0] == "explore"
        info = super().tell(genomes, outcomes, latents)
        self._described = None
        if exploring:
            info.update(self._count_exploration(len(genomes)))
        info.update(self.learning_metrics())
        return info

    # -- state ---------------------------------------------------------------------------------
    def load_state_dict(self, state: dict, archives: dict[str, Archive]) -> None:
        super().load_state_dict(state, archives)
        self.ns._pending_frames = self._pending_frames
