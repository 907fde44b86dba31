"""SERENE's elitist reward emitters, all active emitters advanced as one tensor operation.

An emitter is a (mu + lambda) evolutionary algorithm on reward around an ancestor genome:
mu = 6 parents, lambda = 12 offspring (2 per parent), mutation ``clip(g + N(0, sigma_e), -5, 5)``
with a fixed per-emitter ``sigma_e`` (see :func:`initial_sigma`). ``E`` emitters are stored as
``[E, mu, D]`` parents and stepped together: one ``ask`` makes ``[E, lambda, D]`` offspring,
one ``tell`` keeps the ``mu`` best of parents + offspring of every emitter (``topk`` over
``[E, mu + lambda]``). The per-generation rewards are kept for the improvement and stagnation
rules (:func:`improvement`, :func:`stagnated`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class EmitterConfig:
    """Elitist emitter settings (SERENE defaults).

    Attributes:
        mu: parents per emitter.
        offspring_per_parent: lambda / mu.
        genome_low, genome_high: gene bounds (clip).
        min_sigma: sigma used when the distance rule gives 0.
    """

    mu: int = 6
    offspring_per_parent: int = 2
    genome_low: float = -5.0
    genome_high: float = 5.0
    min_sigma: float = 0.05

    @property
    def lam(self) -> int:
        return self.mu * self.offspring_per_parent


def initial_sigma(
    ancestors: torch.Tensor,
    others: torch.Tensor,
    *,
    self_index: torch.Tensor | None = None,
    fallback: float = 0.05,
) -> torch.Tensor:
    """SERENE's sigma rule: distance in genome space from each ancestor ``[E, D]`` to the nearest
    other genome of ``others`` ``[N, D]`` (the population + offspring of the generation that
    found it), divided by 3.

    ``self_index [E]`` is the ancestor's own row of ``others`` (-1: not there), left out. As in
    the authors' code, ``fallback`` is used where that distance is 0 (a duplicate genome) or no
    other genome exists.
    """
    dist = torch.cdist(ancestors.float(), others.float())
    if self_index is not None:
        rows = torch.arange(len(ancestors))
        own = torch.as_tensor(self_index, dtype=torch.long)
        mine = torch.zeros_like(dist, dtype=torch.bool)
        mine[rows[own >= 0], own[own >= 0]] = True
        dist = dist.masked_fill(mine, float("inf"))
    nearest = dist.min(1).values if dist.shape[1] else torch.full((len(ancestors),), float("inf"))
    sigma = nearest / 3
    usable = torch.isfinite(sigma) & (sigma > 0)
    return torch.where(usable, sigma, torch.full_like(sigma, fallback))


def _per_generation(history: torch.Tensor) -> torch.Tensor:
    """``[E, G, k]`` rewards with non-finite entries (padding) as NaN; ``[E, G]`` gets k = 1."""
    history = history.float()
    if history.dim() == 2:
        history = history[..., None]
    return torch.where(torch.isfinite(history), history, torch.nan)


def improvement(history: torch.Tensor) -> torch.Tensor:
    """``max(mean(last 3 generations) - mean(first 3), 0)`` per emitter.

    ``history [E, G, k]`` holds each generation's population rewards (the elitist emitter's mu
    parents after selection, CMA-ES's sampled population), as the authors' ``values``; the
    means run over every reward of those generations. ``[E, G]`` is read as ``k = 1``.
    """
    values = _per_generation(history)
    first = values[:, :3].flatten(1).nanmean(1)
    last = values[:, -3:].flatten(1).nanmean(1)
    return torch.nan_to_num(last - first, nan=0.0).clamp(min=0)


def update_best(
    best_genomes: torch.Tensor, best_rewards: torch.Tensor, genomes: torch.Tensor, rewards
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per emitter, the better of the best so far (``[E, D]``, ``[E]``) and this generation's
    best of ``genomes [E, k, D]`` / ``rewards [E, k]``."""
    top, where = rewards.max(1)
    better = top > best_rewards
    picked = genomes[torch.arange(len(genomes)), where]
    genomes_out = torch.where(better[:, None], picked, best_genomes)
    return genomes_out, torch.where(better, top, best_rewards)


def newest_first_top(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Column indices of the ``count`` highest ``scores [E, n]`` per row, highest first; equal
    scores are ordered last column first (the authors' ``argsort()[::-1]``)."""
    n = scores.shape[1]
    order = torch.sort(scores.flip(1), dim=1, descending=True, stable=True).indices
    return (n - 1 - order)[:, :count]


def stagnation_window(genome_size: int, mu: int) -> int:
    """SERENE's W = int(20 * D / mu + 120)."""
    return int(20 * genome_size / mu + 120)


def stagnated(history: torch.Tensor, window: int) -> torch.Tensor:
    """Stop rule over per-generation population rewards ``[E, G, k]`` (or ``[E, G]``): once
    more than ``window`` generations ran, compare the first and last 20 generations of the last
    ``window`` (all their rewards together); stop if the median or the max did not improve.
    Emitters with ``G <= window`` never stop."""
    values = _per_generation(history)
    if values.shape[1] <= window:
        return torch.zeros(values.shape[0], dtype=torch.bool, device=values.device)
    recent = values[:, -window:]
    first, last = recent[:, :20].flatten(1), recent[:, -20:].flatten(1)
    no_median = first.nanmedian(1).values >= last.nanmedian(1).values
    low = torch.tensor(-float("inf"), device=values.device)
    no_max = (
        torch.where(first.isnan(), low, first).max(1).values
        >= torch.where(last.isnan(), low, last).max(1).values
    )
    return no_median | no_max


class ElitistEmitters:
    """A batch of elitist emitters advanced together.

    Args:
        ancestors: ``[E, D]`` genomes the emitters start from.
        sigmas: ``[E]`` mutation standard deviations.
        config: emitter settings.
        generator: CPU generator for the mutations.
        novelty: ``None`` selects parents by reward (SERENE's emitter); a function mapping
            descriptors ``[N, m]`` to novelty ``[N]`` selects them by novelty instead (the
            novelty-selecting variant; parents are re-scored every generation, since novelty
            is relative to a reference set that grows).
    """

    kind = "elitist"

    def __init__(
        self,
        ancestors: torch.Tensor,
        sigmas: torch.Tensor,
        config: EmitterConfig,
        generator: torch.Generator,
        *,
        novelty: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.config = config
        self.generator = generator
        self.novelty = novelty
        self.ancestors = ancestors.float().clone()
        self.sigmas = sigmas.float().clone()
        e, d = ancestors.shape
        self.parents = self._mutate(self.ancestors[:, None].expand(e, config.mu, d))
        self.parent_rewards = torch.full((e, config.mu), -float("inf"))
        self.parent_measures = torch.zeros(e, config.mu, 0)
        self.best_genomes = self.ancestors.clone()
        self.best_rewards = torch.full((e,), -float("inf"))
        self.history: list[torch.Tensor] = []  # parents' rewards after each selection [E, mu]
        self.generations = 0
        self.selected = torch.zeros(e, 0, dtype=torch.long)  # see :meth:`tell`

    @property
    def initial_size(self) -> int:
        """Evaluations per emitter in the initial generation."""
        return self.config.mu

    @property
    def generation_size(self) -> int:
        """Evaluations per emitter in each later generation."""
        return self.config.lam

    def __len__(self) -> int:
        return self.ancestors.shape[0]

    def _mutate(self, genomes: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(genomes.shape, generator=self.generator)
        mutated = genomes + noise * self.sigmas[:, None, None]
        return mutated.clamp(self.config.genome_low, self.config.genome_high)

    def _track_best(self, genomes: torch.Tensor, rewards: torch.Tensor) -> None:
        self.best_genomes, self.best_rewards = update_best(
            self.best_genomes, self.best_rewards, genomes, rewards
        )

    def _scores(self, rewards: torch.Tensor, measures: torch.Tensor) -> torch.Tensor:
        if self.novelty is None:
            return rewards
        e, n, m = measures.shape
        scores = self.novelty(measures.reshape(e * n, m)).float().cpu().view(e, n)
        return torch.where(torch.isfinite(rewards), scores, rewards)  # padding stays -inf

    def initial(self) -> torch.Tensor:
        """The first population of every emitter (mu mutants of its ancestor), ``[E, mu, D]``."""
        return self.parents

    def tell_initial(self, rewards: torch.Tensor, measures: torch.Tensor | None = None) -> None:
        """Rewards ``[E, mu]`` (and descriptors ``[E, mu, m]``) of :meth:`initial`."""
        self.parent_rewards = rewards.float().clone()
        self.selected = torch.arange(self.config.mu).expand(len(self), -1)
        if measures is not None:
            self.parent_measures = measures.float().clone()
        self._track_best(self.parents, self.parent_rewards)
        self.history.append(self.parent_rewards.clone())
        self.generations += 1

    def ask(self) -> torch.Tensor:
        """Offspring of every emitter, ``[E, lambda, D]`` (each parent makes k children)."""
        parents = self.parents.repeat_interleave(self.config.offspring_per_parent, 1)
        return self._mutate(parents)

    def tell(
        self,
        offspring: torch.Tensor,
        rewards: torch.Tensor,
        measures: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(mu + lambda) elitist selection per emitter; returns the best reward so far ``[E]``.

        The ``mu`` best of parents + offspring are kept, best first; on equal scores the later
        row wins (newest first, as the authors' reversed ascending sort). :attr:`selected`
        ``[E, mu]`` holds the kept rows of ``[parents; offspring]``. ``rewards`` of padding rows
        (not evaluated) are ``-inf``; they are never kept while real rows remain.
        """
        offspring, rewards = offspring.float(), rewards.float()
        genomes = torch.cat([self.parents, offspring], 1)
        all_rewards = torch.cat([self.parent_rewards, rewards], 1)
        if measures is None:
            measures = torch.zeros(*rewards.shape, self.parent_measures.shape[2])
        all_measures = torch.cat([self.parent_measures, measures.float()], 1)
        scores = self._scores(all_rewards, all_measures)
        keep = newest_first_top(scores, self.config.mu)
        self.selected = keep
        self.parents = torch.gather(genomes, 1, keep[..., None].expand(-1, -1, genomes.shape[2]))
        self.parent_rewards = torch.gather(all_rewards, 1, keep)
        self.parent_measures = torch.gather(
            all_measures, 1, keep[..., None].expand(-1, -1, all_measures.shape[2])
        )
        self._track_best(offspring, rewards)
        self.history.append(self.parent_rewards.clone())
        self.generations += 1
        return self.best_rewards

    def should_stop(self) -> torch.Tensor:
        """``[E]`` bool: the elitist EA has no stop test of its own (stagnation decides)."""
        return torch.zeros(len(self), dtype=torch.bool)

    def reward_history(self) -> torch.Tensor:
        """Rewards of the parents after each generation's selection, ``[E, G, mu]``."""
        return torch.stack(self.history, 1)

    def best(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Best genome ``[E, D]`` and reward ``[E]`` evaluated by every emitter."""
        return self.best_genomes, self.best_rewards

    _STATE = (
        "ancestors",
        "sigmas",
        "parents",
        "parent_rewards",
        "parent_measures",
        "best_genomes",
        "best_rewards",
    )

    def subset(self, keep: torch.Tensor) -> ElitistEmitters:
        """A new batch with the emitters where ``keep`` is True (same generator, copies)."""
        state = {k: v[keep] for k, v in self.state().items()}
        return type(self).from_state(
            state, self.config, self.generator, self.generations, novelty=self.novelty
        )

    def state(self) -> dict[str, torch.Tensor]:
        """Tensors that rebuild the batch with :meth:`from_state`."""
        state = {k: getattr(self, k) for k in self._STATE}
        state["history"] = (
            self.reward_history() if self.history else torch.zeros(len(self), 0, self.config.mu)
        )
        return state

    @classmethod
    def from_state(
        cls,
        state: dict[str, torch.Tensor],
        config: EmitterConfig,
        generator: torch.Generator,
        generations: int,
        *,
        novelty: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> ElitistEmitters:
        """Rebuild from :meth:`state` (``novelty`` as in the constructor)."""
        other = cls.__new__(cls)
        other.config, other.generator, other.generations = config, generator, generations
        other.novelty = novelty
        for k in cls._STATE:
            setattr(other, k, state[k].clone())
        other.history = list(state["history"].unbind(1))
        other.selected = torch.zeros(len(other), 0, dtype=torch.long)
        return other

    def select(self, keep: torch.Tensor) -> None:
        """Keep only the emitters where ``keep`` ``[E]`` is True."""
        for k in self._STATE:
            setattr(self, k, getattr(self, k)[keep])
        self.history = [h[keep] for h in self.history]
