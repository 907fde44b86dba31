"""Novelty Search (Lehman & Stanley 2011) as used inside SERENE/STAX (Paolo et al.).

Each generation every parent of the population (100) makes 2 offspring by Gaussian mutation
(sigma 0.05, genes clipped to [-5, 5]). Novelty = mean distance to the k = 15 nearest neighbours
in R = novelty archive + population + offspring, excluding the individual itself (the authors'
code always drops the closest distance, even for individuals outside R; we exclude *self*).
After each generation 5 offspring chosen uniformly at random join the unbounded novelty archive
(options: top-k by novelty, novelty threshold); the next population is the 100 most novel of
population + offspring ((mu + lambda) truncation). The initial population (N(0, 1) genomes,
clipped) counts as generation 0: it is evaluated and becomes the first population, and, as in
the authors' code, none of it is archived (only offspring are).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from qd.algorithms.base import Algorithm
from qd.archive import Archive, InsertionRule
from qd.evaluation import Outcomes


@dataclass
class NSConfig:
    """Novelty Search settings (defaults: the papers').

    Attributes:
        pop_size: population size (mu).
        offspring_per_parent: offspring made by each parent every generation.
        sigma: standard deviation of the Gaussian mutation.
        genome_low: lower gene bound (clip).
        genome_high: upper gene bound (clip).
        init_std: standard deviation of the initial genomes.
        k_neighbors: k of the k-NN novelty.
        archive_rule: ``random``, ``top_novelty`` or ``threshold``.
        archive_add: offspring archived per generation (``random``, ``top_novelty``).
        novelty_threshold: novelty needed to be archived (``threshold``).
        space: behaviour space name (``ground_truth``, ``final_obs[:source=obs]``,
            ``signature[...]``).
    """

    pop_size: int = 100
    offspring_per_parent: int = 2
    sigma: float = 0.05
    genome_low: float = -5.0
    genome_high: float = 5.0
    init_std: float = 1.0
    k_neighbors: int = 15
    archive_rule: str = "random"
    archive_add: int = 5
    novelty_threshold: float = 0.0
    space: str = "ground_truth"

    def __post_init__(self) -> None:
        if self.pop_size <= 0 or self.offspring_per_parent <= 0:
            raise ValueError("pop_size and offspring_per_parent must be > 0")
        if self.sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")
        if self.genome_low >= self.genome_high:
            raise ValueError("genome_low must be < genome_high")
        if self.archive_rule not in ("random", "top_novelty", "threshold"):
            raise ValueError(
                f"archive_rule must be random, top_novelty or threshold, got {self.archive_rule!r}"
            )


class NoveltySearch(Algorithm):
    """Ask/tell Novelty Search over genomes ``[B, genome_size]``.

    Args:
        config: settings.
        genome_size: genes per genome.
        measure_dim: size of the behaviour descriptor the search uses.
        env_spec: the env spec dict (for archive headers and ground-truth size).
        device: where archives live.
        seed: seed of the genome generator and archive generators.
        stored_fields: extra per-individual fields ``{name: (shape, dtype)}`` kept in the
            novelty archive and the population (e.g. TAXONS's uint8 frames and surprise);
            :meth:`tell` receives their values as ``extras``.
    """

    name = "ns"

    def __init__(
        self,
        config: NSConfig,
        *,
        genome_size: int,
        measure_dim: int,
        env_spec: dict,
        device: str | torch.device = "cpu",
        seed: int = 0,
        stored_fields: dict[str, tuple[tuple[int, ...], torch.dtype]] | None = None,
    ) -> None:
        self.config = config
        self.stored_fields = dict(stored_fields or {})
        self.genome_size = int(genome_size)
        self.device = torch.device(device)
        self.generation = 0
        self._generator = torch.Generator().manual_seed(int(seed))
        common = dict(
            solution_dim=genome_size,
            measure_dim=measure_dim,
            ground_truth_dim=env_spec["descriptor_size"],
            k_neighbors=config.k_neighbors,
            device=self.device,
            env_spec=env_spec,
        )
        rule = InsertionRule(
            kind=config.archive_rule, count=config.archive_add, threshold=config.novelty_threshold
        )
        self.archive = Archive(
            **common,
            insertion=rule,
            extra_fields=self.stored_fields,
            seed=seed + 1,
            name="novelty",
        )
        self.population = Archive(
            **common,
            insertion=InsertionRule("all"),
            extra_fields={**self.stored_fields, "novelty_score": ((), torch.float32)},
            seed=seed + 2,
            name="population",
        )
        self.archives = {"novelty": self.archive, "population": self.population}
        self.last_selection = torch.zeros(0, dtype=torch.long)  # rows of the union kept

    # -- ask/tell ------------------------------------------------------------------------------
    def ask(self, max_count: int | None = None) -> torch.Tensor:
        """Genomes to evaluate next: the initial population, then the offspring."""
        cfg = self.config
        if self.population.empty:
            genomes = torch.randn(cfg.pop_size, self.genome_size, generator=self._generator)
            genomes = (genomes * cfg.init_std).clamp_(cfg.genome_low, cfg.genome_high)
        else:
            parents = self.population.genomes.cpu().repeat_interleave(cfg.offspring_per_parent, 0)
            noise = torch.randn(parents.shape, generator=self._generator) * cfg.sigma
            genomes = (parents + noise).clamp_(cfg.genome_low, cfg.genome_high)
        if max_count is not None:
            genomes = genomes[: max(0, int(max_count))]
        return genomes.to(self.device)

    def tell(
        self,
        genomes: torch.Tensor,
        outcomes: Outcomes,
        descriptors: torch.Tensor,
        *,
        extra_reference: torch.Tensor | None = None,
        extras: dict[str, torch.Tensor] | None = None,
    ) -> dict:
        """Score the evaluated genomes, feed the archive and select the next population.

        ``extra_reference`` descriptors (e.g. SERENE's reward archive) join the novelty
        reference set; ``extras`` holds one value per genome for every ``stored_fields`` entry.
        """
        genomes = genomes.to(self.device)
        descriptors = descriptors.to(self.device, torch.float32)
        rows = {
            "solution": genomes,
            "objective": outcomes.fitness.to(self.device),
            "measures": descriptors,
            "ground_truth": outcomes.descriptor.to(self.device),
            "reward_area": outcomes.reward_area.to(self.device),
        }
        extras = dict(extras or {})
        if set(extras) != set(self.stored_fields):
            raise ValueError(
                f"tell expects extras for the stored fields {sorted(self.stored_fields)}, "
                f"got {sorted(extras)}"
            )
        rows.update({k: v.to(self.device) for k, v in extras.items()})
        first = self.population.empty
        pop = {} if first else self.population.data(list(rows), return_type="torch")
        union = rows if first else {k: torch.cat([pop[k], rows[k]], 0) for k in rows}
        n_pop = 0 if first else len(self.population)
        n_archive = len(self.archive)
        # Novelty of population + offspring against archive + population + offspring.
        reference = union["measures"]
        if extra_reference is not None and len(extra_reference):
            reference = torch.cat([reference, extra_reference.to(self.device, torch.float32)], 0)
        novelty = self.archive.novelty(
            union["measures"],
            reference=reference,
            self_index=n_archive + torch.arange(len(union["measures"]), device=self.device),
        )
        order, selection_info = self._select_survivors(union, novelty)
        if not first:  # only offspring are archived (the initial population is not)
            self.archive.add(
                rows["solution"],
                rows["objective"],
                rows["measures"],
                novelty=novelty[n_pop:],
                ground_truth=rows["ground_truth"],
                reward_area=rows["reward_area"],
                **{k: rows[k] for k in extras},
            )
        self.population.clear()
        self.population.add(
            union["solution"][order],
            union["objective"][order],
            union["measures"][order],
            novelty=novelty[order],
            ground_truth=union["ground_truth"][order],
            reward_area=union["reward_area"][order],
            novelty_score=novelty[order],
            **{k: union[k][order] for k in extras},
        )
        self.last_selection = order
        self.generation += 1
        return {
            "generation": self.generation,
            "novelty_mean": float(novelty[n_pop:].mean()) if len(novelty) > n_pop else 0.0,
            "novelty_max": float(novelty.max()),
            **selection_info,
        }

    def _select_survivors(
        self, union: dict[str, torch.Tensor], novelty: torch.Tensor
    ) -> tuple[torch.Tensor, dict]:
        """Rows of population + offspring (``union``, with their ``novelty``) that form the next
        population, in order, and extra metrics. NS: the ``pop_size`` most novel (stable order on
        ties). Called before this generation's archive insertion, so :attr:`archive` is the one
        the novelty was computed against (rows ``[archive; union]`` of the reference set).
        """
        return torch.sort(novelty, descending=True, stable=True).indices[: self.config.pop_size], {}

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Tensors and JSON-able values needed to resume (archives are saved separately)."""
        return {
            "tensors": {"generator": self._generator.get_state()},
            "meta": {"generation": self.generation, "config": asdict(self.config)},
        }

    def load_state_dict(self, state: dict, archives: dict[str, Archive]) -> None:
        """Restore from :meth:`state_dict` and loaded archives."""
        self._generator.set_state(state["tensors"]["generator"])
        self.generation = int(state["meta"]["generation"])
        self.archive = archives["novelty"]
        self.population = archives["population"]
        self.archives = {"novelty": self.archive, "population": self.population}
