"""SERENE's emitter lifecycle: bootstrapping, running, archiving and stopping emitters.

:class:`EmitterLifecycle` is mixed into :class:`qd.algorithms.serene.Serene`; it holds the
rules the authors' code applies to an emitter (GPaolo/STAX ``core/evolvers/serene.py``,
``emitter_evolver.py``, ``core/emitters/``):

- A rewarding NS individual becomes a candidate with its sigma_e fixed at once (nearest other
  genome of that generation's population + offspring, / 3) and its row in the reward archive,
  which is left out of its novelty w.r.t. the reward archive (candidate order, Pareto choice).
- The emitter's *population* is the selected one (the elitist EA's mu parents, CMA-ES's sampled
  population). Its rows live in the ``members`` archive (field ``emitter`` = the owner's id),
  since survivors of earlier generations may be archived later.
- Reward archive: after every generation but the initial one, the population's best if the
  emitter archived nothing yet (and its reward is > 0), else every member whose reward exceeds
  the emitter's previous archived maximum.
- Novelty buffer (running generations only): every population member more novel (w.r.t. the NS
  reference set) than the emitter's most novel so far; that threshold starts at the ancestor's
  novelty, recomputed each time the emitter is chosen, until a member beats it.
- An emitter stops when it stagnates or when its search's own stop test fires (CMA-ES); then its
  ancestor joins the reward archive and 5 random buffer rows join the novelty archive.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from qd.algorithms.pareto import nsga2_select
from qd.emitters import EMITTER_TYPES, improvement, initial_sigma, stagnated


@dataclass
class Emitter:
    """What SERENE tracks about one active emitter (its ancestor, population and buffer are
    archive rows)."""

    search: object | None  # a batch of one (qd.emitters.EMITTER_TYPES); None: a pool row
    uid: int  # owner id of its rows in the ``members`` and ``buffers`` archives
    improvement: float
    archived_max: float = -float("inf")  # highest reward it put in the reward archive
    most_novel: float = -float("inf")  # novelty threshold of its buffer
    novel_member: bool = False  # False while the threshold is the ancestor's novelty
    baseline: int = 0  # first of the 3 generations the improvement is measured against


def pareto_front(objectives: torch.Tensor) -> torch.Tensor:
    """Indices of the non-dominated rows of ``objectives [N, M]`` (maximisation)."""
    ge = (objectives[:, None, :] >= objectives[None, :, :]).all(-1)
    gt = (objectives[:, None, :] > objectives[None, :, :]).any(-1)
    dominated = (ge & gt).any(0)  # row j dominated by some i
    return torch.nonzero(~dominated).flatten()


def archive_choice(rewards: torch.Tensor, archived_max: torch.Tensor) -> torch.Tensor:
    """``[E, n]`` bool: the population members ``rewards [E, n]`` that join the reward archive.

    Per emitter: with nothing archived yet (``archived_max`` ``-inf``), its first best member if
    its reward is > 0; otherwise every member whose reward exceeds ``archived_max``.
    """
    fresh = ~torch.isfinite(archived_max)
    best, where = rewards.max(1)
    first = torch.zeros_like(rewards, dtype=torch.bool)
    first[torch.arange(len(rewards)), where] = fresh & (best > 0)
    return first | (~fresh[:, None] & (rewards > archived_max[:, None]))


class EmitterLifecycle:
    """Emitter methods of :class:`~qd.algorithms.serene.Serene` (see the module docstring)."""

    # -- searches and their state --------------------------------------------------------------
    def _make_batch(self, ancestors: torch.Tensor, sigmas: torch.Tensor):
        """A batch of new emitter searches of the configured type."""
        kind = self.config.emitter_type
        extra = {"novelty": self._ns_novelty} if kind == "novelty" else {}
        return EMITTER_TYPES[kind](ancestors, sigmas, self.emitter_config, self.generator, **extra)

    def _restore_batch(self, state: dict, generations: int):
        """An emitter search rebuilt from its saved state."""
        kind = self.config.emitter_type
        extra = {"novelty": self._ns_novelty} if kind == "novelty" else {}
        return EMITTER_TYPES[kind].from_state(
            state, self.emitter_config, self.generator, generations, **extra
        )

    def _emitters_state(self, tensors: dict) -> list[dict]:
        """Write every active emitter's search tensors to ``tensors``; their JSON meta."""
        meta = []
        for i, e in enumerate(self.emitters):
            state, generations = self._search_state(i)
            tensors.update({f"emitter{i}.search.{k}": v for k, v in state.items()})
            meta.append(
                {
                    "uid": e.uid,
                    "improvement": e.improvement,
                    "archived_max": e.archived_max,
                    "most_novel": e.most_novel,
                    "novel_member": e.novel_member,
                    "generations": generations,
                    "baseline": e.baseline,
                }
            )
        return meta

    def _load_emitters(self, tensors: dict, meta: list[dict]) -> list[Emitter]:
        """Inverse of :meth:`_emitters_state` (pooled emitters rejoin :attr:`pool`)."""
        emitters, self.pool = [], None
        for i, m in enumerate(meta):
            prefix = f"emitter{i}.search."
            state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            search = self._restore_batch(state, m["generations"])
            if self._pooled():
                self._pool_add(search)
                search = None
            fields = ("archived_max", "most_novel", "novel_member", "baseline")
            emitters.append(
                Emitter(search, m["uid"], m["improvement"], **{f: m[f] for f in fields})
            )
        return emitters

    # -- rows ----------------------------------------------------------------------------------
    def _pad_rows(self, rows: dict, total: int) -> dict:
        """``rows`` padded to ``total`` rows (objective ``-inf``, other fields 0)."""
        out = {}
        for key, value in rows.items():
            pad = torch.zeros(total - len(value), *value.shape[1:], dtype=value.dtype)
            if key == "objective":
                pad.fill_(-float("inf"))
            out[key] = torch.cat([value, pad.to(value.device)])
        return out

    def _padded(self, rows: dict, shape: tuple[int, int]):
        """Rewards ``[E, k]`` (``-inf`` for rows cut by the budget), descriptors and genomes."""
        full = self._pad_rows(rows, shape[0] * shape[1])
        return (
            full["objective"].cpu().float().view(shape),
            full["measures"].cpu().float().view(*shape, -1),
            full["solution"].cpu().float().view(*shape, -1),
        )

    def _count_area_evaluations(self, areas: torch.Tensor, per_emitter: int, used: int) -> None:
        """Charge ``used`` evaluations to the reward areas of the emitters' ancestors."""
        if not self.n_areas:
            return
        charged = areas.cpu().long().repeat_interleave(per_emitter)[:used]
        charged = charged[(charged >= 0) & (charged < self.n_areas)]
        self.area_evaluations += torch.bincount(charged, minlength=self.n_areas)

    def _member_rows(self, uids: torch.Tensor) -> torch.Tensor:
        """Rows of the ``members`` archive owned by ``uids``, grouped in that order."""
        owner = self.members.field("emitter").cpu()
        match = owner[:, None] == uids[None, :]
        rows = torch.nonzero(match.any(1)).flatten()
        which = match[rows].float().argmax(1)
        return rows[torch.sort(which, stable=True).indices]

    def _new_population(self, uids: torch.Tensor, rows: dict, search, size: int) -> dict:
        """Store the populations the emitters ``uids`` selected in their last ``tell`` (rows
        ``search.selected`` of ``[old population; this generation's rows, size each]``) and
        return them, ``[E * n]`` rows grouped by emitter."""
        e = len(uids)
        old = self._member_rows(uids)
        previous = self.members.rows(old.to(self.device))
        new = self._pad_rows(rows, e * size)
        selected = search.selected.to(self.device)
        chosen = {}
        for key, value in new.items():
            tail = value.shape[1:]
            both = torch.cat(
                [previous[key].view(e, len(old) // e, *tail), value.view(e, size, *tail)], 1
            )
            index = selected.view(*selected.shape, *([1] * len(tail)))
            chosen[key] = torch.gather(both, 1, index.expand(-1, -1, *tail)).flatten(0, 1)
        keep = torch.ones(len(self.members), dtype=torch.bool)
        keep[old] = False
        self.members.keep(torch.nonzero(keep).flatten().to(self.device))
        owner = uids.repeat_interleave(selected.shape[1]).to(self.device)
        # Rows the budget cut (the run's last generation) were never evaluated: their reward is
        # -inf, and a CMA-ES population keeps every sampled row. They are not stored.
        evaluated = torch.isfinite(chosen["objective"])
        if not bool(evaluated.all()):
            stored = {key: value[evaluated] for key, value in chosen.items()}
            self._add_rows(self.members, stored, emitter=owner[evaluated])
            return chosen
        self._add_rows(self.members, chosen, emitter=owner)
        return chosen

    def _archive_rewarding(self, population: dict, archived_max: torch.Tensor) -> torch.Tensor:
        """Reward-archive the members chosen by :func:`archive_choice`; new ``archived_max``."""
        rewards = population["objective"].cpu().float().view(len(archived_max), -1)
        pick = archive_choice(rewards, archived_max)
        if pick.any():
            self._add_rows(self.reward_archive, population, torch.nonzero(pick.flatten()).flatten())
        top = torch.where(pick, rewards, torch.full_like(rewards, -float("inf"))).max(1).values
        return torch.maximum(archived_max, top)

    # -- choosing ------------------------------------------------------------------------------
    def _emitter_objectives(self) -> torch.Tensor:
        """``[E, 2]``: novelty of each emitter's ancestor w.r.t. the reward archive (its own row
        left out), and its improvement (both maximised)."""
        ancestors = self.ancestors.rows(slice(0, len(self.emitters)))
        novelty = self._reward_novelty(ancestors["measures"], ancestors["reward_row"]).cpu()
        improvements = torch.tensor([e.improvement for e in self.emitters])
        return torch.stack([novelty, improvements], 1)

    def _seed_threshold(self, index: int) -> None:
        """An emitter chosen to run: while no member beat it, its buffer threshold is its
        ancestor's novelty w.r.t. the NS reference set (the ancestor's own row left out)."""
        emitter = self.emitters[index]
        if emitter.novel_member:
            return
        row = self.ancestors.rows(slice(index, index + 1))
        novelty = self._ns_novelty(row["measures"], reward_rows=row["reward_row"])
        emitter.most_novel = float(novelty[0])

    def _choose_emitter(self) -> int:
        front = pareto_front(self._emitter_objectives())
        pick = torch.randint(len(front), (1,), generator=self.generator)
        return int(front[pick])

    def _choose_emitters(self) -> list[int]:
        """Concurrent exploitation: the first Pareto front, or the best ``exploit_emitters``
        in NSGA-II order; in emitter order."""
        objectives = self._emitter_objectives()
        if self.config.exploit_emitters:
            chosen = nsga2_select(objectives, self.config.exploit_emitters)
        else:
            chosen = pareto_front(objectives)
        return sorted(int(i) for i in chosen)

    # -- telling -------------------------------------------------------------------------------
    def _new_candidates(self, rows: dict, parents: torch.Tensor) -> None:
        """Rewarding NS individuals join the reward archive and become candidates, with their
        sigma_e against this generation's ``parents`` + evaluated genomes."""
        rewarding = torch.nonzero(rows["objective"] > 0).flatten()
        if not len(rewarding):
            return
        others = torch.cat([parents, rows["solution"]])
        sigma = initial_sigma(
            rows["solution"][rewarding],
            others,
            self_index=(len(parents) + rewarding).cpu(),
            fallback=self.emitter_config.min_sigma,
        )
        reward_row = len(self.reward_archive) + torch.arange(len(rewarding))
        self._add_rows(self.reward_archive, rows, rewarding)
        self._add_rows(
            self.candidates,
            rows,
            rewarding,
            sigma=sigma.to(self.device),
            reward_row=reward_row.to(self.device),
        )

    def _tell_bootstrap(self, stage: tuple, rows: dict) -> None:
        _, batch, first, generation, uids, archived_max = stage
        n = len(batch)
        size = batch.initial_size if generation == 0 else batch.generation_size
        rewards, measures, genomes = self._padded(rows, (n, size))
        areas = self.ancestors.field("reward_area")[first:]
        self._count_area_evaluations(areas, size, len(rows["objective"]))
        if generation == 0:
            batch.tell_initial(rewards, measures)
        else:
            batch.tell(genomes, rewards, measures)
        population = self._new_population(uids, rows, batch, size)
        if generation > 0:  # the initial generation is not archived (authors' code)
            archived_max = self._archive_rewarding(population, archived_max)
        if generation < self.config.bootstrap_generations:
            self._stage = ("bootstrap", batch, first, generation + 1, uids, archived_max)
            return
        history = batch.reward_history()
        gains = improvement(history)
        kept = torch.nonzero(gains > 0).flatten()
        pooled = self._pooled()
        if pooled and len(kept):
            self._pool_add(batch.subset(gains > 0))
        for i in kept.tolist():
            keep = torch.zeros(n, dtype=torch.bool)
            keep[i] = True
            search = None if pooled else batch.subset(keep)
            emitter = Emitter(search, int(uids[i]), float(gains[i]))
            emitter.archived_max = float(archived_max[i])
            if self.config.local_improvement:  # the next run is measured from here
                emitter.baseline = history.shape[1] - 3
            self.emitters.append(emitter)
        dropped = torch.ones(n, dtype=torch.bool)
        dropped[kept] = False
        self._drop_members(uids[dropped])
        self.ancestors.keep(torch.cat([torch.arange(first), first + kept]).to(self.device))
        self._stage = None

    def _drop_members(self, uids: torch.Tensor) -> None:
        owner = self.members.field("emitter").cpu()
        mine = (owner[:, None] == uids[None, :]).any(1)
        self.members.keep(torch.nonzero(~mine).flatten().to(self.device))

    def _tell_many(self, indices: list[int], rows: dict) -> None:
        """Concurrent exploitation: each emitter's slice of the batch (a cut batch leaves the
        last emitters without rows: they skip this generation); stopped ones end. Pooled
        emitters are told together (:mod:`qd.algorithms.serene_pool`)."""
        if self.pool is not None:
            self._tell_pool(indices, rows)
            return
        start, stopped = 0, []
        for index in indices:
            size = self.emitters[index].search.generation_size
            part = {k: v[start : start + size] for k, v in rows.items()}
            start += size
            if len(part["objective"]) and self._tell_run(index, part):
                stopped.append(index)
        for index in sorted(stopped, reverse=True):
            self._terminate(index)
        self._stage = None

    def _tell_run(self, index: int, rows: dict) -> bool:
        """One generation of emitter ``index``; True when it should stop (the caller ends it)."""
        emitter = self.emitters[index]
        search = emitter.search
        size = search.generation_size
        rewards, measures, genomes = self._padded(rows, (1, size))
        area = self.ancestors.field("reward_area")[index : index + 1]
        self._count_area_evaluations(area, size, len(rows["objective"]))
        search.tell(genomes, rewards, measures)
        population = self._new_population(torch.tensor([emitter.uid]), rows, search, size)
        before = torch.tensor([emitter.archived_max])
        emitter.archived_max = float(self._archive_rewarding(population, before)[0])
        # buffer: members more novel (w.r.t. the NS reference set) than the most novel so far
        real = torch.isfinite(population["objective"]).cpu()
        novelty = self._ns_novelty(population["measures"]).cpu()
        novelty = torch.where(real, novelty, torch.full_like(novelty, -float("inf")))
        novel = torch.nonzero(novelty > emitter.most_novel).flatten()
        if len(novel):
            owner = torch.full((len(novel),), emitter.uid, dtype=torch.int64)
            self._add_rows(self.buffers, population, novel.to(self.device), emitter=owner)
            emitter.most_novel, emitter.novel_member = float(novelty.max()), True
        stop = stagnated(search.reward_history(), self.window) | search.should_stop()
        return bool(stop[0])

    def _terminate(self, index: int) -> None:
        self._running = None
        emitter = self.emitters.pop(index)
        if self.pool is not None:
            self._pool_remove(index)
        if self._running_uids is not None:
            self._running_uids = [u for u in self._running_uids if u != emitter.uid] or None
        self._add_rows(self.reward_archive, self.ancestors.rows(slice(index, index + 1)))
        others = torch.arange(len(self.ancestors), device=self.device)
        self.ancestors.keep(others[others != index])
        self._drop_members(torch.tensor([emitter.uid]))
        owned = self.buffers.field("emitter") == emitter.uid
        mine = torch.nonzero(owned).flatten()
        if len(mine):
            pick = torch.randperm(len(mine), generator=self.generator)
            chosen = mine[pick[: self.config.emitter_archive_add].to(self.device)]
            self._add_rows(self.ns.archive, self.buffers.rows(chosen))
            self.buffers.keep(torch.nonzero(~owned).flatten())
