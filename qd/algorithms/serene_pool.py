"""SERENE's concurrent exploitation with elitist emitters: all active emitters in one pool.

With ``exploit="concurrent"`` and an elitist emitter type (``elitist`` or ``novelty``), the
active emitters are the rows of one :class:`~qd.emitters.ElitistEmitters` (``Serene.pool``):
row i is ``Serene.emitters[i]`` (and row i of the ``ancestors`` archive). An emitter joins the
pool when its bootstrapping ends with improvement > 0 and leaves it when it stops. One
``ask`` makes the offspring of every running emitter, one ``tell`` selects for all of them;
the per-emitter rules (reward archive, novelty buffer, stagnation) run as tensor operations
over the running rows.

CMA-ES emitters are not pooled: pyribs's ``CMAEvolutionStrategy`` holds one search per
instance, so they stay batches of one, asked and told one after the other (their episodes
still share one rollout batch). PGPE emitters (``emitter_type="pgpe"``) are not pooled either.
"""

from __future__ import annotations

import torch

from qd.emitters import improvement, stagnated


class PooledExploitation:
    """Pool methods of :class:`~qd.algorithms.serene.Serene` (see the module docstring)."""

    def _pooled(self) -> bool:
        """True when the active emitters live in :attr:`pool`."""
        return self.config.exploit == "concurrent" and self.config.emitter_type in (
            "elitist",
            "novelty",
        )

    def _pool_add(self, batch) -> None:
        """Append the emitters of ``batch`` (just bootstrapped) as the pool's last rows."""
        if self.pool is None:
            self.pool = batch
        else:
            self.pool.append(batch)

    def _pool_remove(self, index: int) -> None:
        keep = torch.ones(len(self.pool), dtype=torch.bool)
        keep[index] = False
        self.pool.select(keep)

    def _history(self, index: int) -> torch.Tensor:
        """Reward history ``[1, G, k]`` of active emitter ``index``."""
        if self.pool is not None:
            return self.pool.reward_history(torch.tensor([index]))
        return self.emitters[index].search.reward_history()

    def _search_state(self, index: int) -> tuple[dict, int]:
        """Search tensors (a batch of one) and generation count of active emitter ``index``."""
        if self.pool is None:
            search = self.emitters[index].search
            return search.state(), search.generations
        one = torch.zeros(len(self.pool), dtype=torch.bool)
        one[index] = True
        return self.pool.subset(one).state(), int(self.pool.lengths[index])

    def _reestimate(self, emitter, index: int) -> None:
        """Improvement of an emitter that ran this chunk (see ``local_improvement``)."""
        history = self._history(index)
        emitter.improvement = float(improvement(history[:, emitter.baseline :])[0])
        if self.config.local_improvement:
            emitter.baseline = history.shape[1] - 3

    def _tell_pool(self, indices: list[int], rows: dict) -> None:
        """One generation of the pooled emitters ``indices`` (their offspring in that order;
        a cut batch leaves the last emitters without rows: they skip this generation)."""
        size = self.pool.generation_size
        count = len(rows["objective"])
        told = indices[: -(-count // size)]
        index = torch.tensor(told, dtype=torch.long)
        emitters = [self.emitters[i] for i in told]
        rewards, measures, genomes = self._padded(rows, (len(told), size))
        areas = self.ancestors.field("reward_area")[index.to(self.device)]
        self._count_area_evaluations(areas, size, count)
        self.pool.tell(genomes, rewards, measures, rows=index)
        uids = torch.tensor([e.uid for e in emitters], dtype=torch.long)
        population = self._new_population(uids, rows, self.pool, size)
        before = torch.tensor([e.archived_max for e in emitters])
        archived_max = self._archive_rewarding(population, before).tolist()
        # buffers: members more novel (w.r.t. the NS reference set) than each one's most novel
        real = torch.isfinite(population["objective"]).cpu().view(len(told), -1)
        novelty = self._ns_novelty(population["measures"]).cpu().view(len(told), -1)
        novelty = torch.where(real, novelty, torch.full_like(novelty, -float("inf")))
        most_novel = torch.tensor([e.most_novel for e in emitters])
        novel = novelty > most_novel[:, None]
        if novel.any():
            owner = uids[:, None].expand_as(novel)[novel]
            where = torch.nonzero(novel.flatten()).flatten().to(self.device)
            self._add_rows(self.buffers, population, where, emitter=owner.to(self.device))
        top = novelty.max(1).values.tolist()
        for j, emitter in enumerate(emitters):
            emitter.archived_max = archived_max[j]
            if novel[j].any():
                emitter.most_novel, emitter.novel_member = top[j], True
        history = self.pool.reward_history(index)
        lengths = self.pool.lengths[index]
        stop = stagnated(history, self.window, lengths=lengths) | self.pool.should_stop(index)
        for j in sorted(torch.nonzero(stop).flatten().tolist(), reverse=True):
            self._terminate(told[j])
        self._stage = None
