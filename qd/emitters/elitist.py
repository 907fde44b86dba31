"""SERENE's elitist reward emitters: a pool of emitters advanced by one tensor operation.

An emitter is a (mu + lambda) evolutionary algorithm on reward around an ancestor genome:
mu = 6 parents, lambda = 12 offspring (2 per parent), mutation ``clip(g + N(0, sigma_e), -5, 5)``
with a fixed per-emitter ``sigma_e`` (see :func:`initial_sigma`). :class:`ElitistEmitters`
stores ``E`` emitters as ``[E, mu, D]`` parents: one ``ask`` makes ``[R, lambda, D]`` offspring
for all of them or a subset of ``R`` rows (one random draw), one ``tell`` keeps the ``mu`` best
of parents + offspring of each of those rows (one sort over ``[R, mu + lambda]``). Rows join
(:meth:`~ElitistEmitters.append`) and leave (:meth:`~ElitistEmitters.select`) at any time, each
with its own generation count and per-generation reward history, used by the improvement and
stagnation rules (:func:`improvement`, :func:`stagnated`).

SERENE uses one batch per group of candidates it bootstraps together, one batch of one per
active emitter in sequential exploitation, and one pool of all active emitters in concurrent
exploitation (:mod:`qd.algorithms.serene_pool`).
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


def stagnated(
    history: torch.Tensor, window: int, *, lengths: torch.Tensor | None = None
) -> torch.Tensor:
    """Stop rule over per-generation population rewards ``[E, G, k]`` (or ``[E, G]``): once
    more than ``window`` generations ran, compare the first and last 20 generations of the last
    ``window`` (all their rewards together); stop if the median or the max did not improve.
    Emitters with ``G <= window`` never stop.

    ``lengths [E]``: each emitter's own generation count when the rows are padded at the end
    (a pool whose emitters started at different times); default ``G`` for every row.
    """
    values = _per_generation(history)
    e, g = values.shape[:2]
    if lengths is None:
        lengths = torch.full((e,), g, dtype=torch.long)
    old = lengths.to(values.device) > window
    if not bool(old.any()):
        return torch.zeros(e, dtype=torch.bool, device=values.device)
    start = (lengths.to(values.device) - window).clamp(min=0)
    steps = (start[:, None] + torch.arange(window, device=values.device)).clamp(max=g - 1)
    recent = values[torch.arange(e, device=values.device)[:, None], steps]
    first, last = recent[:, :20].flatten(1), recent[:, -20:].flatten(1)
    no_median = first.nanmedian(1).values >= last.nanmedian(1).values
    low = torch.tensor(-float("inf"), device=values.device)
    no_max = (
        torch.where(first.isnan(), low, first).max(1).values
        >= torch.where(last.isnan(), low, last).max(1).values
    )
    return (no_median | no_max) & old


class ElitistEmitters:
    """A pool of elitist emitters: every call advances all of them, or the rows ``rows``, as
    one tensor operation.

    Emitters may join (:meth:`append`) and leave (:meth:`select`) the pool at different times,
    so each row has its own generation count (:attr:`lengths`) and reward history.

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
        self.parents = self._mutate(self.ancestors[:, None].expand(e, config.mu, d), self.sigmas)
        self.parent_rewards = torch.full((e, config.mu), -float("inf"))
        self.parent_measures = torch.zeros(e, config.mu, 0)
        self.best_genomes = self.ancestors.clone()
        self.best_rewards = torch.full((e,), -float("inf"))
        # parents' rewards after each selection, [E, capacity, mu] (NaN past each row's length)
        self._history = torch.full((e, 8, config.mu), torch.nan)
        self.lengths = torch.zeros(e, dtype=torch.long)  # generations told, per emitter
        self.selected = torch.zeros(e, 0, dtype=torch.long)  # see :meth:`tell`

    @property
    def initial_size(self) -> int:
        """Evaluations per emitter in the initial generation."""
        return self.config.mu

    @property
    def generation_size(self) -> int:
        """Evaluations per emitter in each later generation."""
        return self.config.lam

    @property
    def generations(self) -> int:
        """Generations told to the longest-running emitter (all of them in a batch that
        advances together)."""
        return int(self.lengths.max()) if len(self) else 0

    def __len__(self) -> int:
        return self.ancestors.shape[0]

    def _rows(self, rows: torch.Tensor | None) -> torch.Tensor:
        return torch.arange(len(self)) if rows is None else torch.as_tensor(rows, dtype=torch.long)

    def _mutate(self, genomes: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(genomes.shape, generator=self.generator)
        mutated = genomes + noise * sigmas[:, None, None]
        return mutated.clamp(self.config.genome_low, self.config.genome_high)

    def _record(self, rows: torch.Tensor) -> None:
        """Append the parents' rewards of emitters ``rows`` to their histories."""
        if not len(rows):
            return
        end = self.lengths[rows]
        capacity = self._history.shape[1]
        if int(end.max()) >= capacity:  # grow geometrically: appending stays O(1) amortised
            grown = torch.full((len(self), 2 * capacity, self.config.mu), torch.nan)
            grown[:, :capacity] = self._history
            self._history = grown
        self._history[rows, end] = self.parent_rewards[rows]
        self.lengths[rows] += 1

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
        self.best_genomes, self.best_rewards = update_best(
            self.best_genomes, self.best_rewards, self.parents, self.parent_rewards
        )
        self._record(torch.arange(len(self)))

    def ask(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Offspring of the emitters ``rows`` (default all), ``[len(rows), lambda, D]``: each
        parent makes ``offspring_per_parent`` children, from one random draw."""
        index = self._rows(rows)
        parents = self.parents[index].repeat_interleave(self.config.offspring_per_parent, 1)
        return self._mutate(parents, self.sigmas[index])

    def tell(
        self,
        offspring: torch.Tensor,
        rewards: torch.Tensor,
        measures: torch.Tensor | None = None,
        *,
        rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(mu + lambda) elitist selection for the emitters ``rows`` (default all), whose
        offspring ``[R, lambda, D]`` and rewards ``[R, lambda]`` are given; returns their best
        reward so far ``[R]``.

        The ``mu`` best of parents + offspring are kept, best first; on equal scores the later
        row wins (newest first, as the authors' reversed ascending sort). :attr:`selected`
        ``[R, mu]`` holds the kept rows of ``[parents; offspring]``. ``rewards`` of padding rows
        (not evaluated) are ``-inf``; they are never kept while real rows remain.
        """
        index = self._rows(rows)
        offspring, rewards = offspring.float(), rewards.float()
        genomes = torch.cat([self.parents[index], offspring], 1)
        all_rewards = torch.cat([self.parent_rewards[index], rewards], 1)
        old_measures = self.parent_measures[index]
        if measures is None:
            measures = torch.zeros(*rewards.shape, old_measures.shape[2])
        all_measures = torch.cat([old_measures, measures.float()], 1)
        keep = newest_first_top(self._scores(all_rewards, all_measures), self.config.mu)
        self.selected = keep
        # out of place: tensors handed out earlier (initial(), state()) stay as they were
        parents = torch.gather(genomes, 1, keep[..., None].expand(-1, -1, genomes.shape[2]))
        self.parents = self.parents.index_put((index,), parents)
        self.parent_rewards = self.parent_rewards.index_put(
            (index,), torch.gather(all_rewards, 1, keep)
        )
        kept_measures = torch.gather(
            all_measures, 1, keep[..., None].expand(-1, -1, all_measures.shape[2])
        )
        self.parent_measures = self.parent_measures.index_put((index,), kept_measures)
        best_genomes, best_rewards = update_best(
            self.best_genomes[index], self.best_rewards[index], offspring, rewards
        )
        self.best_genomes = self.best_genomes.index_put((index,), best_genomes)
        self.best_rewards = self.best_rewards.index_put((index,), best_rewards)
        self._record(index)
        return best_rewards

    def should_stop(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """``[R]`` bool: the elitist EA has no stop test of its own (stagnation decides)."""
        return torch.zeros(len(self._rows(rows)), dtype=torch.bool)

    def reward_history(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Rewards of the parents after each generation's selection, ``[R, G, mu]`` for the
        emitters ``rows`` (default all); ``G`` is the longest of their :attr:`lengths`, shorter
        histories are NaN-padded at the end."""
        index = self._rows(rows)
        longest = int(self.lengths[index].max()) if len(index) else 0
        return self._history[index, :longest]

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
        "lengths",
    )

    def subset(self, keep: torch.Tensor) -> ElitistEmitters:
        """A new pool with the emitters where ``keep`` is True (same generator, copies)."""
        state = {k: v[keep] for k, v in self.state().items()}
        return type(self).from_state(
            state, self.config, self.generator, self.generations, novelty=self.novelty
        )

    def append(self, other: ElitistEmitters) -> None:
        """Add the emitters of ``other`` (same config) as new rows at the end."""
        for k in self._STATE:
            setattr(self, k, torch.cat([getattr(self, k), getattr(other, k)]))
        capacity = max(self._history.shape[1], other._history.shape[1])
        self._history = torch.cat(
            [_pad_steps(self._history, capacity), _pad_steps(other._history, capacity)]
        )
        self.selected = torch.zeros(len(self), 0, dtype=torch.long)

    def state(self) -> dict[str, torch.Tensor]:
        """Tensors that rebuild the pool with :meth:`from_state`."""
        state = {k: getattr(self, k) for k in self._STATE}
        state["history"] = self.reward_history()
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
        """Rebuild from :meth:`state` (``novelty`` as in the constructor). States without
        ``lengths`` (one generation count for all) take ``generations``."""
        other = cls.__new__(cls)
        other.config, other.generator = config, generator
        other.novelty = novelty
        e = len(state["ancestors"])
        state = {"lengths": torch.full((e,), generations, dtype=torch.long), **state}
        for k in cls._STATE:
            setattr(other, k, state[k].clone())
        other._history = _pad_steps(state["history"].float(), max(8, state["history"].shape[1]))
        other.selected = torch.zeros(e, 0, dtype=torch.long)
        return other

    def select(self, keep: torch.Tensor) -> None:
        """Keep only the emitters where ``keep`` ``[E]`` is True."""
        for k in self._STATE:
            setattr(self, k, getattr(self, k)[keep])
        self._history = self._history[keep]
        self.selected = torch.zeros(len(self), 0, dtype=torch.long)


def _pad_steps(history: torch.Tensor, capacity: int) -> torch.Tensor:
    """``history [E, G, mu]`` NaN-padded to ``capacity`` generations."""
    pad = torch.full((history.shape[0], capacity - history.shape[1], history.shape[2]), torch.nan)
    return torch.cat([history, pad], 1)
