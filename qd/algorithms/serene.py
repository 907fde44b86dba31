"""SERENE (Paolo et al., GECCO 2021): Novelty Search explores, reward emitters exploit.

A meta-scheduler alternates chunks of ``chunk_size`` (1,000) evaluations between exploration
(the Novelty Search of :mod:`qd.algorithms.ns`, whose novelty reference set also holds the
reward archive) and exploitation (emitters). Any rewarding NS offspring joins the reward
archive and becomes an emitter *candidate*.

Exploitation chunk:
1. Bootstrapping: candidates, most novel first (novelty of their descriptor w.r.t. the reward
   archive), each get an elitist (6 + 12) emitter for 6 + 5 x 12 = 66 evaluations; several
   candidates are bootstrapped together as one batch (``qd.emitters.ElitistEmitters``) while
   more than a third of the chunk is left. A candidate becomes an active emitter iff its
   improvement is > 0: the mean reward of the emitter population (its mu parents after
   selection) over the last 3 generations minus the same over its first 3, floored at 0.
2. Then an emitter is picked uniformly at random from the first Pareto front of (novelty of its
   ancestor w.r.t. the reward archive, improvement) and run generation after generation until
   the chunk is spent or it stagnates (W = int(20 D / mu + 120) generations; first vs last 20).
   When the chunk ends, the improvement of the emitter that ran is re-estimated: its last 3
   generations against the last 3 before this run (``local_improvement``, the authors' flag).
   Opt-in ``exploit="concurrent"``: the whole first front (or the best ``exploit_emitters``)
   runs together instead, one generation of each per batch, sharing the chunk.
The reward archive receives each emitter's first rewarding best, every new best, and its
ancestor when it stops; the novelty archive receives, from every stopped emitter, 5 random
individuals of its buffer of individuals more novel (w.r.t. the NS reference set) than its most
novel one so far. A chunk with nothing to exploit costs nothing.

Every individual SERENE keeps lives in an :class:`~qd.archive.Archive` (all saved with the
checkpoints and re-encoded together by STAX): ``novelty`` and ``population`` (NS), ``reward``,
``candidates`` (rewarding NS offspring not yet bootstrapped), ``ancestors`` (row i: the
ancestor of active emitter i, then the candidates being bootstrapped) and ``buffers`` (the
emitters' novelty buffers, field ``emitter`` = the owner's id). Emitter searches keep their
populations as tensors (``qd.emitters``).

Checkpoints are taken at chunk boundaries (``ready_for_checkpoint``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from qd.algorithms.base import Algorithm
from qd.algorithms.ns import NoveltySearch, NSConfig
from qd.algorithms.pareto import nsga2_select
from qd.archive import Archive, InsertionRule
from qd.emitters import (
    EMITTER_TYPES,
    EmitterConfig,
    improvement,
    initial_sigma,
    stagnated,
    stagnation_window,
)
from qd.emitters.schedulers import EXPLOIT, EXPLORE, SCHEDULERS, TimeDecaying, chunk_reward
from qd.evaluation import Outcomes


@dataclass
class SereneConfig(NSConfig):
    """SERENE settings: the NS fields plus the emitter and scheduler ones (papers' defaults).

    Attributes:
        chunk_size: evaluations per exploration or exploitation chunk.
        scheduler: ``alternating``, ``fixed``, ``time`` or ``ucb``.
        budget: total evaluations (used by the ``time`` scheduler and W).
        emitter_mu: emitter parents.
        emitter_offspring_per_parent: emitter children per parent.
        bootstrap_generations: emitter generations after the initial one while bootstrapping.
        emitter_archive_add: buffer individuals archived when an emitter stops.
        emitter_type: ``elitist`` (SERENE's (6 + 12) EA on reward), ``novelty`` (the same EA
            selecting parents by novelty w.r.t. the NS reference set) or ``cma`` (CMA-ES on
            reward, population 6, sigma0 = sigma_e, bounds [-5, 5]). Every type is bootstrapped
            for the same number of evaluations (6 + 5 x 12 = 66).
        local_improvement: when a chunk ends, the improvement of the emitter that ran is
            re-estimated as the mean reward of its last 3 generations minus the last 3 before
            this run (``True``, default) or minus its first 3 generations (``False``). Both are
            the authors' code (its ``local_improvement`` flag); the papers only define the
            bootstrap test. With ``False`` a long-running emitter keeps the improvement it
            accumulated since its birth and stays on the Pareto front, starving the others (on
            Curling one seed in three then left the small goal below 0.9 at 200k evaluations).
        exploit: ``sequential`` (the papers: one emitter from the first Pareto front runs until
            the chunk ends or it stops) or ``concurrent`` (opt-in: the emitters of the first
            front run together, one generation each per batch, sharing the chunk's budget).
        exploit_emitters: with ``concurrent``, run the best K emitters in NSGA-II order
            (front, then crowding) instead of the first front (0 = the first front).
    """

    chunk_size: int = 1000
    scheduler: str = "alternating"
    budget: int = 500_000
    emitter_mu: int = 6
    emitter_offspring_per_parent: int = 2
    bootstrap_generations: int = 5
    emitter_archive_add: int = 5
    emitter_type: str = "elitist"
    local_improvement: bool = True
    exploit: str = "sequential"
    exploit_emitters: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.scheduler not in SCHEDULERS:
            raise ValueError(
                f"scheduler must be one of {sorted(SCHEDULERS)}, got {self.scheduler!r}"
            )
        if self.chunk_size <= 0:
            raise ValueError("chunk_size must be > 0")
        if self.exploit not in ("sequential", "concurrent"):
            raise ValueError(f"exploit must be sequential or concurrent, got {self.exploit!r}")
        if self.exploit_emitters < 0:
            raise ValueError(f"exploit_emitters must be >= 0, got {self.exploit_emitters}")
        if self.emitter_type not in EMITTER_TYPES:
            raise ValueError(
                f"emitter_type must be one of {sorted(EMITTER_TYPES)}, got {self.emitter_type!r}"
            )


@dataclass
class _Emitter:
    """What SERENE tracks about one active emitter (its ancestor and buffer are in archives)."""

    search: object  # an emitter batch of one (qd.emitters.EMITTER_TYPES)
    uid: int  # owner id of its rows in the ``buffers`` archive
    improvement: float
    best: float
    most_novel: float = -float("inf")
    baseline: int = 0  # first of the 3 generations the improvement is measured against


def pareto_front(objectives: torch.Tensor) -> torch.Tensor:
    """Indices of the non-dominated rows of ``objectives [N, M]`` (maximisation)."""
    ge = (objectives[:, None, :] >= objectives[None, :, :]).all(-1)
    gt = (objectives[:, None, :] > objectives[None, :, :]).any(-1)
    dominated = (ge & gt).any(0)  # row j dominated by some i
    return torch.nonzero(~dominated).flatten()


class Serene(Algorithm):
    """Ask/tell SERENE over genomes ``[B, D]`` (see the module docstring)."""

    name = "serene"

    def __init__(
        self,
        config: SereneConfig,
        *,
        genome_size: int,
        measure_dim: int,
        env_spec: dict,
        device="cpu",
        seed: int = 0,
    ) -> None:
        self.config = config
        self.device = torch.device(device)
        self.genome_size = genome_size
        self.ns = self._make_ns(
            config,
            genome_size=genome_size,
            measure_dim=measure_dim,
            env_spec=env_spec,
            device=device,
            seed=seed,
        )
        common = dict(
            solution_dim=genome_size,
            measure_dim=measure_dim,
            ground_truth_dim=env_spec["descriptor_size"],
            k_neighbors=config.k_neighbors,
            insertion=InsertionRule("all"),
            device=device,
            env_spec=env_spec,
        )
        stored = self.ns.stored_fields
        self.reward_archive = Archive(**common, extra_fields=stored, seed=seed + 3, name="reward")
        self.candidates = Archive(**common, extra_fields=stored, seed=seed + 5, name="candidates")
        self.ancestors = Archive(**common, extra_fields=stored, seed=seed + 6, name="ancestors")
        self.buffers = Archive(
            **common,
            extra_fields={**stored, "emitter": ((), torch.int64)},
            seed=seed + 7,
            name="buffers",
        )
        self.generator = torch.Generator().manual_seed(seed + 4)
        self.emitter_config = EmitterConfig(
            mu=config.emitter_mu,
            offspring_per_parent=config.emitter_offspring_per_parent,
            genome_low=config.genome_low,
            genome_high=config.genome_high,
        )
        self.window = stagnation_window(genome_size, config.emitter_mu)
        sched = SCHEDULERS[config.scheduler]
        if sched is TimeDecaying:
            self.scheduler = sched(config.budget, seed=seed)
        elif config.scheduler == "fixed":
            self.scheduler = sched(seed=seed)
        else:
            self.scheduler = sched()
        self.emitters: list[_Emitter] = []
        self.next_uid = 0
        self.phase: str | None = None
        self.chunk_used = 0
        self.chunk_start_count = 0
        self.chunk_ran = False
        self.evaluations = 0
        self._stage: tuple | None = None  # ("explore",) | ("bootstrap", ...) | ("run", i)
        self._last_offspring = torch.zeros(0, genome_size, device=self.device)
        self.n_areas = int(env_spec.get("reward_areas", 0))
        self.emitter_evaluations = 0
        self._running: int | None = None  # emitter chosen for this chunk
        self._running_uids: list[int] | None = None  # emitters run together (concurrent)
        self.area_evaluations = torch.zeros(self.n_areas, dtype=torch.long)
        self.chunks = 0
        self.bootstrap_evaluations = config.emitter_mu * (
            1 + config.emitter_offspring_per_parent * config.bootstrap_generations
        )  # 66 at the defaults, for every emitter type

    def _make_ns(self, config: SereneConfig, **kwargs) -> NoveltySearch:
        """The Novelty Search of the exploration chunks (STAX: TAXONS's)."""
        return NoveltySearch(config, **kwargs)

    def _fields(self, outcomes: Outcomes, genomes, descriptors) -> dict[str, torch.Tensor]:
        """Archive fields of evaluated genomes (STAX adds frames and surprise)."""
        return {
            "solution": genomes.to(self.device, torch.float32),
            "objective": outcomes.fitness.to(self.device),
            "measures": descriptors.to(self.device, torch.float32),
            "ground_truth": outcomes.descriptor.to(self.device),
            "reward_area": outcomes.reward_area.to(self.device),
        }

    def _tell_ns(self, genomes, outcomes, descriptors, rows: dict) -> dict:
        """The NS step of an exploration generation (reward archive in the reference set)."""
        return self.ns.tell(
            genomes, outcomes, descriptors, extra_reference=self.reward_archive.descriptors
        )

    def _add_rows(self, archive: Archive, rows: dict, index=None, **extra) -> None:
        """Offer rows ``index`` (default: all) of the field dict ``rows`` to ``archive``."""
        if index is not None:
            rows = {k: v[index] for k, v in rows.items()}
        archive.add(
            rows["solution"],
            rows["objective"],
            rows["measures"],
            novelty=torch.zeros(len(rows["solution"])),
            ground_truth=rows["ground_truth"],
            reward_area=rows["reward_area"],
            **{k: rows[k] for k in self.ns.stored_fields},
            **extra,
        )

    def _make_batch(self, ancestors: torch.Tensor, sigmas: torch.Tensor):
        kind = self.config.emitter_type
        extra = {"novelty": self._ns_novelty} if kind == "novelty" else {}
        return EMITTER_TYPES[kind](ancestors, sigmas, self.emitter_config, self.generator, **extra)

    def _restore_batch(self, state: dict, generations: int):
        kind = self.config.emitter_type
        extra = {"novelty": self._ns_novelty} if kind == "novelty" else {}
        return EMITTER_TYPES[kind].from_state(
            state, self.emitter_config, self.generator, generations, **extra
        )

    def _bootstrap_generations(self, batch) -> int:
        """Generations after the initial one that spend the bootstrap evaluations."""
        rest = self.bootstrap_evaluations - batch.initial_size
        return max(1, -(-rest // batch.generation_size))

    def _ns_novelty(self, measures: torch.Tensor) -> torch.Tensor:
        """Novelty w.r.t. the NS reference set (population + novelty and reward archives)."""
        ns_ref = torch.cat([self.ns.population.descriptors, self.reward_archive.descriptors])
        return self.ns.archive.novelty(measures.to(self.device), reference=ns_ref)

    @property
    def archives(self) -> dict[str, Archive]:
        return {
            **self.ns.archives,
            "reward": self.reward_archive,
            "candidates": self.candidates,
            "ancestors": self.ancestors,
            "buffers": self.buffers,
        }

    def _n_candidates(self) -> int:
        return len(self.candidates)

    def _reward_novelty(self, descriptors: torch.Tensor) -> torch.Tensor:
        return self.reward_archive.novelty(descriptors)

    # -- planning ----------------------------------------------------------------------------
    def _start_chunk(self) -> None:
        self.phase = self.scheduler.choose()
        self.chunks += 1
        self.chunk_used = 0
        self.chunk_ran = False
        self.chunk_start_count = self._n_candidates() + len(self.emitters)
        if self.phase == EXPLOIT and not (self._n_candidates() or self.emitters):
            self._end_chunk()  # nothing to exploit: the chunk costs nothing (reward -1)
            self.phase = self.scheduler.choice = EXPLORE
            self.chunk_used = 0

    def _end_chunk(self) -> None:
        ran = [] if self._running is None else [self.emitters[self._running]]
        ran += [e for e in self.emitters if e.uid in (self._running_uids or ())]
        for emitter in ran:  # the emitters that ran: re-estimate their improvement
            history = emitter.search.reward_history()
            emitter.improvement = float(improvement(history[:, emitter.baseline :])[0])
            if self.config.local_improvement:
                emitter.baseline = history.shape[1] - 3
        self._running, self._running_uids = None, None
        count = self._n_candidates() + len(self.emitters)
        reward = chunk_reward(self.phase, self.chunk_start_count, count, ran=self.chunk_ran)
        self.scheduler.update(
            reward=reward, emitters_available=count > 0, evaluations=self.evaluations
        )
        self.phase = None

    def ask(self, max_count: int | None = None) -> torch.Tensor:
        """Next genomes: an NS generation, a bootstrap generation or an emitter generation."""
        if self.phase is None:
            self._start_chunk()
        if self.phase == EXPLORE:
            self._stage = ("explore",)
            return self.ns.ask(max_count)
        remaining = self.config.chunk_size - self.chunk_used
        per_candidate = self.bootstrap_evaluations
        if self._stage is not None and self._stage[0] == "bootstrap":
            genomes = self._stage[1].ask().flatten(0, 1)
        elif self._n_candidates() and remaining > self.config.chunk_size // 3:
            count = min(
                self._n_candidates(),
                max(1, (remaining - self.config.chunk_size // 3) // per_candidate),
            )
            order = torch.sort(
                self._reward_novelty(self.candidates.descriptors), descending=True, stable=True
            ).indices
            first = len(self.ancestors)  # the bootstrapped candidates follow the emitters' rows
            self._add_rows(self.ancestors, self.candidates.rows(order[:count]))
            self.candidates.keep(order[count:])
            genomes = self.ancestors.genomes[first:].clone()
            others = torch.cat([self.ns.population.genomes, self._last_offspring])
            sigmas = initial_sigma(genomes, others, fallback=self.emitter_config.min_sigma)
            batch = self._make_batch(genomes.cpu(), sigmas.cpu())
            self._stage = ("bootstrap", batch, first, 0)
            genomes = batch.initial().flatten(0, 1)
        elif self.emitters and self.config.exploit == "concurrent":
            if self._running_uids is None:  # chosen once, then run until the chunk ends
                self._running_uids = [self.emitters[i].uid for i in self._choose_emitters()]
            index = [i for i, e in enumerate(self.emitters) if e.uid in self._running_uids]
            self._stage = ("run_many", index)
            genomes = torch.cat([self.emitters[i].search.ask().flatten(0, 1) for i in index])
        elif self.emitters:
            if self._running is None:  # chosen once, then run until the chunk ends or it stops
                self._running = self._choose_emitter()
            index = self._running
            self._stage = ("run", index)
            genomes = self.emitters[index].search.ask().flatten(0, 1)
        else:
            self._end_chunk()
            return self.ask(max_count)
        if max_count is not None:
            genomes = genomes[: max(0, int(max_count))]
        return genomes.to(self.device)

    def _emitter_objectives(self) -> torch.Tensor:
        """``[E, 2]``: novelty of each emitter's ancestor w.r.t. the reward archive, and its
        improvement (both maximised)."""
        novelty = self._reward_novelty(self.ancestors.descriptors[: len(self.emitters)]).cpu()
        improvements = torch.tensor([e.improvement for e in self.emitters])
        return torch.stack([novelty, improvements], 1)

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

    # -- telling -----------------------------------------------------------------------------
    def tell(self, genomes: torch.Tensor, outcomes: Outcomes, descriptors: torch.Tensor) -> dict:
        """Route the evaluated genomes to NS or the emitters."""
        rows = self._fields(outcomes, genomes, descriptors)
        count = len(genomes)
        self.evaluations += count
        self.chunk_used += count
        stage = self._stage
        choice = self.phase
        info: dict = {}
        if stage[0] == "explore":
            info = self._tell_ns(genomes, outcomes, descriptors, rows)
            self._last_offspring = rows["solution"]
            self._new_candidates(rows)
        else:
            self.chunk_ran = True
            self.emitter_evaluations += count
            if stage[0] == "bootstrap":
                self._tell_bootstrap(stage, rows)
            elif stage[0] == "run_many":
                self._tell_many(stage[1], rows)
            else:
                if self._tell_run(stage[1], rows):
                    self._terminate(stage[1])
                self._stage = None
        if self.phase == EXPLORE and self.chunk_used >= self.config.chunk_size:
            self._end_chunk()
        elif (
            self.phase == EXPLOIT
            and self._stage is None
            and (self.chunk_used >= self.config.chunk_size)
        ):
            self._end_chunk()
        return {
            **info,
            "phase": stage[0],
            "candidates": self._n_candidates(),
            "active_emitters": len(self.emitters),
            "reward_archive_size": len(self.reward_archive),
            "emitter_evaluations": self.emitter_evaluations,
            "emitter_evaluations_per_area": self.area_evaluations.tolist(),
            "scheduler_choice": choice,
            "chunk": self.chunks,
        }

    def _new_candidates(self, rows: dict) -> None:
        rewarding = torch.nonzero(rows["objective"] > 0).flatten()
        if len(rewarding):
            self._add_rows(self.reward_archive, rows, rewarding)
            self._add_rows(self.candidates, rows, rewarding)

    def _padded(self, rows: dict, shape: tuple[int, int]):
        """Rewards ``[E, k]`` (``-inf`` for rows cut by the budget), descriptors and genomes."""
        n = len(rows["objective"])
        rewards = torch.full((shape[0] * shape[1],), -float("inf"))
        rewards[:n] = rows["objective"].cpu()
        measures = torch.zeros(shape[0] * shape[1], rows["measures"].shape[1])
        measures[:n] = rows["measures"].cpu()
        genomes = torch.zeros(shape[0] * shape[1], self.genome_size)
        genomes[:n] = rows["solution"].cpu()
        return rewards.view(shape), measures.view(*shape, -1), genomes.view(*shape, -1)

    def _count_area_evaluations(self, areas: torch.Tensor, per_emitter: int, used: int) -> None:
        """Charge ``used`` evaluations to the reward areas of the emitters' ancestors."""
        if not self.n_areas:
            return
        charged = areas.cpu().long().repeat_interleave(per_emitter)[:used]
        charged = charged[(charged >= 0) & (charged < self.n_areas)]
        self.area_evaluations += torch.bincount(charged, minlength=self.n_areas)

    def _tell_bootstrap(self, stage: tuple, rows: dict) -> None:
        _, batch, first, generation = stage
        n = len(batch)
        before = batch.best()[1].clone()
        size = batch.initial_size if generation == 0 else batch.generation_size
        rewards, measures, genomes = self._padded(rows, (n, size))
        areas = self.ancestors.field("reward_area")[first:]
        self._count_area_evaluations(areas, size, len(rows["objective"]))
        if generation == 0:
            batch.tell_initial(rewards, measures)
        else:
            batch.tell(genomes, rewards, measures)
        self._archive_new_bests(rows, rewards, before, batch.best()[1])
        if generation < self._bootstrap_generations(batch):
            self._stage = ("bootstrap", batch, first, generation + 1)
            return
        gains = improvement(batch.reward_history())
        best = batch.best()[1]
        kept = torch.nonzero(gains > 0).flatten()
        for i in kept.tolist():
            keep = torch.zeros(n, dtype=torch.bool)
            keep[i] = True
            single = batch.subset(keep)
            self.emitters.append(_Emitter(single, self.next_uid, float(gains[i]), float(best[i])))
            self.next_uid += 1
        self.ancestors.keep(torch.cat([torch.arange(first), first + kept]))
        self._stage = None

    def _archive_new_bests(
        self, rows: dict, rewards: torch.Tensor, before: torch.Tensor, after: torch.Tensor
    ) -> None:
        """Each emitter's first rewarding best and every new best join the reward archive.

        ``rewards [E, k]`` are this generation's rewards (rows in the same order),
        ``before``/``after`` the emitters' best rewards around the selection.
        """
        improved = (after > before) & (after > 0)
        if not improved.any():
            return
        k = rewards.shape[1]
        index = torch.nonzero(improved).flatten() * k + rewards.argmax(1)[improved]
        index = index[index < len(rows["objective"])].to(self.device)
        if len(index):
            self._add_rows(self.reward_archive, rows, index)

    def _tell_many(self, indices: list[int], rows: dict) -> None:
        """Concurrent exploitation: each emitter's slice of the batch (a cut batch leaves the
        last emitters without rows: they skip this generation); stagnated ones stop."""
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
        """One generation of emitter ``index``; True when it stagnated (the caller stops it)."""
        emitter = self.emitters[index]
        size = emitter.search.generation_size
        before = emitter.search.best()[1].clone()
        rewards, measures, genomes = self._padded(rows, (1, size))
        area = self.ancestors.field("reward_area")[index : index + 1]
        self._count_area_evaluations(area, size, len(rows["objective"]))
        emitter.search.tell(genomes, rewards, measures)
        self._archive_new_bests(rows, rewards, before, emitter.search.best()[1])
        # buffer of individuals more novel (w.r.t. the NS reference set) than the most novel yet
        ns_ref = torch.cat([self.ns.population.descriptors, self.reward_archive.descriptors])
        novelty = self.ns.archive.novelty(rows["measures"], reference=ns_ref).cpu()
        novel = torch.nonzero(novelty > emitter.most_novel).flatten()
        if len(novel):
            owner = torch.full((len(novel),), emitter.uid, dtype=torch.int64)
            self._add_rows(self.buffers, rows, novel.to(self.device), emitter=owner)
        emitter.most_novel = max(emitter.most_novel, float(novelty.max()))
        emitter.best = max(emitter.best, float(emitter.search.best()[1][0]))
        return bool(stagnated(emitter.search.reward_history(), self.window)[0])

    def _terminate(self, index: int) -> None:
        self._running = None
        emitter = self.emitters.pop(index)
        if self._running_uids is not None:
            self._running_uids = [u for u in self._running_uids if u != emitter.uid] or None
        self._add_rows(self.reward_archive, self.ancestors.rows(slice(index, index + 1)))
        others = torch.arange(len(self.ancestors), device=self.device)
        self.ancestors.keep(others[others != index])
        owned = self.buffers.field("emitter") == emitter.uid
        mine = torch.nonzero(owned).flatten()
        if len(mine):
            pick = torch.randperm(len(mine), generator=self.generator)
            chosen = mine[pick[: self.config.emitter_archive_add].to(self.device)]
            self._add_rows(self.ns.archive, self.buffers.rows(chosen))
            self.buffers.keep(torch.nonzero(~owned).flatten())

    # -- checkpoints -------------------------------------------------------------------------
    def ready_for_checkpoint(self) -> bool:
        """Only between chunks (no bootstrap or emitter generation in flight)."""
        return self.phase is None

    def state_dict(self) -> dict:
        """Everything needed to resume at a chunk boundary (archives are saved separately)."""
        tensors = {f"ns.{k}": v for k, v in self.ns.state_dict()["tensors"].items()}
        tensors["generator"] = self.generator.get_state()
        tensors["last_offspring"] = self._last_offspring.cpu()
        emitters_meta = []
        for i, e in enumerate(self.emitters):
            s = e.search
            tensors.update({f"emitter{i}.search.{k}": v for k, v in s.state().items()})
            emitters_meta.append(
                {
                    "uid": e.uid,
                    "improvement": e.improvement,
                    "best": e.best,
                    "most_novel": e.most_novel,
                    "generations": s.generations,
                    "baseline": e.baseline,
                }
            )
        meta = {
            "ns": self.ns.state_dict()["meta"],
            "config": asdict(self.config),
            "scheduler": self.scheduler.state_dict(),
            "emitters": emitters_meta,
            "evaluations": self.evaluations,
            "emitter_evaluations": self.emitter_evaluations,
            "chunks": self.chunks,
            "next_uid": self.next_uid,
        }
        tensors["area_evaluations"] = self.area_evaluations
        return {"tensors": tensors, "meta": meta}

    def load_state_dict(self, state: dict, archives: dict[str, Archive]) -> None:
        """Restore from :meth:`state_dict` and loaded archives."""
        t, meta = state["tensors"], state["meta"]
        self.ns.load_state_dict(
            {
                "tensors": {k[3:]: v for k, v in t.items() if k.startswith("ns.")},
                "meta": meta["ns"],
            },
            archives,
        )
        missing = {"candidates", "ancestors", "buffers"} - set(archives)
        if missing:
            raise ValueError(
                f"checkpoint lacks SERENE archives {sorted(missing)} (written by an older qdtorch "
                "that kept them inside state.safetensors); start the run again"
            )
        self.reward_archive = archives["reward"]
        self.candidates = archives["candidates"]
        self.ancestors = archives["ancestors"]
        self.buffers = archives["buffers"]
        self.next_uid = int(meta["next_uid"])
        self.generator.set_state(t["generator"])
        self._last_offspring = t["last_offspring"].to(self.device)
        self.scheduler.load_state_dict(meta["scheduler"])
        self.evaluations = meta["evaluations"]
        self.emitter_evaluations = meta["emitter_evaluations"]
        self.chunks = meta["chunks"]
        self.area_evaluations = t["area_evaluations"].clone()
        self.emitters = []
        for i, m in enumerate(meta["emitters"]):
            prefix = f"emitter{i}.search."
            search = self._restore_batch(
                {k[len(prefix) :]: v for k, v in t.items() if k.startswith(prefix)},
                m["generations"],
            )
            self.emitters.append(
                _Emitter(
                    search, m["uid"], m["improvement"], m["best"], m["most_novel"], m["baseline"]
                )
            )
        self.phase, self._stage, self._running = None, None, None
        self._running_uids = None
