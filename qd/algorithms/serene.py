"""SERENE (Paolo et al., GECCO 2021): Novelty Search explores, reward emitters exploit.

A meta-scheduler alternates chunks of ``chunk_size`` (1,000) evaluations between exploration
(the Novelty Search of :mod:`qd.algorithms.ns`, whose novelty reference set also holds the
reward archive) and exploitation (emitters). Any rewarding NS offspring joins the reward
archive and becomes an emitter *candidate*.

Exploitation chunk:
1. Bootstrapping: candidates, most novel first (novelty of their descriptor w.r.t. the reward
   archive, their own row left out), each get an emitter for its initial generation and 5 more
   (elitist: 6 + 5 x 12 = 66 evaluations, CMA-ES: 6 + 5 x 6 = 36); several candidates are
   bootstrapped together as one batch while more than a third of the chunk is left. A candidate
   becomes an active emitter iff its improvement is > 0: the mean reward of the emitter
   population over the last 3 generations minus the same over its first 3, floored at 0.
2. Then an emitter is picked uniformly at random from the first Pareto front of (novelty of its
   ancestor w.r.t. the reward archive, improvement) and run generation after generation until
   the chunk is spent or it stops (stagnation: W = int(20 D / mu + 120) generations, first vs
   last 20; CMA-ES: also its own stop test). When the chunk ends, the improvement of the emitter
   that ran is re-estimated against its first 3 generations (``local_improvement=False``, the
   authors' default) or against the 3 generations before this run (``True``).
   Opt-in ``exploit="concurrent"``: the whole first front (or the best ``exploit_emitters``)
   runs together instead, one generation of each per batch, sharing the chunk; elitist emitters
   are then rows of one pool, advanced by one ask and one tell (:mod:`qd.algorithms.serene_pool`).
Each candidate's mutation scale sigma_e is fixed when it is found: the distance in genome space
to the nearest other genome of that generation's population + offspring, / 3. The reward
archive, novelty buffer and stop rules of running emitters are in
:mod:`qd.algorithms.serene_emitters`. A chunk with nothing to exploit costs nothing.

Every individual SERENE keeps lives in an :class:`~qd.archive.Archive` (all saved with the
checkpoints and re-encoded together by STAX): ``novelty`` and ``population`` (NS), ``reward``,
``candidates`` (rewarding NS individuals not yet bootstrapped; fields ``sigma`` and
``reward_row``, their row in ``reward``), ``ancestors`` (row i: the ancestor of active emitter
i, then the candidates being bootstrapped), ``members`` (each emitter's current population) and
``buffers`` (the emitters' novelty buffers); field ``emitter`` = the owner's id. Emitter
searches keep their populations as tensors too (``qd.emitters``).

Checkpoints are taken at chunk boundaries (``ready_for_checkpoint``). The settings,
:class:`SereneConfig`, are in :mod:`qd.algorithms.serene_config` (importable from here too).
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from qd.algorithms.base import Algorithm
from qd.algorithms.ns import NoveltySearch
from qd.algorithms.serene_config import SereneConfig
from qd.algorithms.serene_emitters import Emitter, EmitterLifecycle
from qd.algorithms.serene_pool import PooledExploitation
from qd.archive import Archive, InsertionRule
from qd.emitters import EmitterConfig, stagnation_window
from qd.emitters.schedulers import EXPLOIT, EXPLORE, SCHEDULERS, TimeDecaying, chunk_reward
from qd.evaluation import Outcomes
from qd.novelty import knn_novelty


class Serene(PooledExploitation, EmitterLifecycle, Algorithm):
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
        found = {**stored, "sigma": ((), torch.float32), "reward_row": ((), torch.int64)}
        owned = {**stored, "emitter": ((), torch.int64)}
        self.reward_archive = Archive(**common, extra_fields=stored, seed=seed + 3, name="reward")
        self.candidates = Archive(**common, extra_fields=found, seed=seed + 5, name="candidates")
        self.ancestors = Archive(**common, extra_fields=found, seed=seed + 6, name="ancestors")
        self.buffers = Archive(**common, extra_fields=owned, seed=seed + 7, name="buffers")
        self.members = Archive(**common, extra_fields=owned, seed=seed + 8, name="members")
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
        self.emitters: list[Emitter] = []
        self.pool = None  # concurrent elitist emitters: row i = emitters[i] (serene_pool.py)
        self.next_uid = 0
        self.phase: str | None = None
        self.chunk_used = 0
        self.chunk_start_count = 0
        self.chunk_ran = False
        self.evaluations = 0
        self._stage: tuple | None = None  # ("explore",) | ("bootstrap", ...) | ("run", i)
        self.n_areas = int(env_spec.get("reward_areas", 0))
        self.emitter_evaluations = 0
        self._running: int | None = None  # emitter chosen for this chunk
        self._running_uids: list[int] | None = None  # emitters run together (concurrent)
        self._ns_reference: torch.Tensor | None = None  # this chunk's NS reference set
        self._reward_offset = 0  # first reward-archive row in it
        self.area_evaluations = torch.zeros(self.n_areas, dtype=torch.long)
        self.chunks = 0
        sampled = config.emitter_type in ("cma", "pgpe")  # mu samples per generation
        per_generation = 1 if sampled else config.emitter_offspring_per_parent
        self.bootstrap_evaluations = config.emitter_mu * (
            1 + per_generation * config.bootstrap_generations
        )  # elitist 6 + 5 x 12 = 66, CMA-ES / PGPE 6 + 5 x 6 = 36

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

    def _ns_novelty(self, measures: torch.Tensor, reward_rows=None) -> torch.Tensor:
        """Novelty w.r.t. the NS reference set (novelty archive, population, reward archive) as
        it was when this exploitation chunk first asked (the authors' snapshot). Queries that
        are rows ``reward_rows`` of the reward archive leave that row out."""
        if self._ns_reference is None:
            parts = (self.ns.archive, self.ns.population, self.reward_archive)
            self._ns_reference = torch.cat([a.descriptors for a in parts])
            self._reward_offset = len(self.ns.archive) + len(self.ns.population)
        own = None if reward_rows is None else self._reward_offset + reward_rows.to(self.device)
        return knn_novelty(
            measures.to(self.device), self._ns_reference, self.config.k_neighbors, self_index=own
        )

    @property
    def archives(self) -> dict[str, Archive]:
        return {
            **self.ns.archives,
            "reward": self.reward_archive,
            "candidates": self.candidates,
            "ancestors": self.ancestors,
            "members": self.members,
            "buffers": self.buffers,
        }

    def _n_candidates(self) -> int:
        return len(self.candidates)

    def _reward_novelty(self, descriptors: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Novelty w.r.t. the reward archive of individuals stored there at ``rows``."""
        return self.reward_archive.novelty(descriptors, self_index=rows)

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
        ran = [] if self._running is None else [self._running]
        ran += [i for i, e in enumerate(self.emitters) if e.uid in (self._running_uids or ())]
        for index in ran:  # the emitters that ran: re-estimate their improvement
            self._reestimate(self.emitters[index], index)
        self._running, self._running_uids = None, None
        count = self._n_candidates() + len(self.emitters)
        reward = chunk_reward(self.phase, self.chunk_start_count, count, ran=self.chunk_ran)
        self.scheduler.update(
            reward=reward, emitters_available=count > 0, evaluations=self.evaluations
        )
        self.phase = None
        self._ns_reference = None

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
            novelty = self._reward_novelty(
                self.candidates.descriptors, self.candidates.field("reward_row")
            )
            order = torch.sort(novelty, descending=True, stable=True).indices
            first = len(self.ancestors)  # the bootstrapped candidates follow the emitters' rows
            chosen = self.candidates.rows(order[:count])
            self._add_rows(
                self.ancestors, chosen, sigma=chosen["sigma"], reward_row=chosen["reward_row"]
            )
            self.candidates.keep(order[count:])
            batch = self._make_batch(chosen["solution"].cpu(), chosen["sigma"].cpu())
            uids = torch.arange(self.next_uid, self.next_uid + count)
            self.next_uid += count
            self._stage = ("bootstrap", batch, first, 0, uids, torch.full((count,), -torch.inf))
            genomes = batch.initial().flatten(0, 1)
        elif self.emitters and self.config.exploit == "concurrent":
            if self._running_uids is None:  # chosen once, then run until the chunk ends
                chosen = self._choose_emitters()
                for i in chosen:
                    self._seed_threshold(i)
                self._running_uids = [self.emitters[i].uid for i in chosen]
            index = [i for i, e in enumerate(self.emitters) if e.uid in self._running_uids]
            self._stage = ("run_many", index)
            if self.pool is not None:  # one draw for every running emitter
                genomes = self.pool.ask(torch.tensor(index, dtype=torch.long)).flatten(0, 1)
            else:
                genomes = torch.cat([self.emitters[i].search.ask().flatten(0, 1) for i in index])
        elif self.emitters:
            if self._running is None:  # chosen once, then run until the chunk ends or it stops
                self._running = self._choose_emitter()
                self._seed_threshold(self._running)
            index = self._running
            self._stage = ("run", index)
            genomes = self.emitters[index].search.ask().flatten(0, 1)
        else:
            self._end_chunk()
            return self.ask(max_count)
        if max_count is not None:
            genomes = genomes[: max(0, int(max_count))]
        return genomes.to(self.device)

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
            parents = self.ns.population.genomes.clone()
            info = self._tell_ns(genomes, outcomes, descriptors, rows)
            self._new_candidates(rows, parents)
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

    # -- checkpoints -------------------------------------------------------------------------
    def ready_for_checkpoint(self) -> bool:
        """Only between chunks (no bootstrap or emitter generation in flight)."""
        return self.phase is None

    def state_dict(self) -> dict:
        """Everything needed to resume at a chunk boundary (archives are saved separately)."""
        tensors = {f"ns.{k}": v for k, v in self.ns.state_dict()["tensors"].items()}
        tensors["generator"] = self.generator.get_state()
        emitters_meta = self._emitters_state(tensors)
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
        missing = {"candidates", "ancestors", "members", "buffers"} - set(archives)
        if missing:
            raise ValueError(
                f"checkpoint lacks SERENE archives {sorted(missing)} (written by an older qdtorch "
                "that kept them inside state.safetensors, or before the emitters' populations "
                "became the members archive); start the run again"
            )
        self.reward_archive = archives["reward"]
        self.candidates = archives["candidates"]
        self.ancestors = archives["ancestors"]
        self.members = archives["members"]
        self.buffers = archives["buffers"]
        self.next_uid = int(meta["next_uid"])
        self.generator.set_state(t["generator"])
        self.scheduler.load_state_dict(meta["scheduler"])
        self.evaluations = meta["evaluations"]
        self.emitter_evaluations = meta["emitter_evaluations"]
        self.chunks = meta["chunks"]
        self.area_evaluations = t["area_evaluations"].clone()
        self.emitters = self._load_emitters(t, meta["emitters"])  # and the pool
        self.phase, self._stage, self._running = None, None, None
        self._running_uids = None
