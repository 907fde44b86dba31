"""One search in its run folder: :class:`Run` builds env, policy, space, algorithm and
tracker from a :class:`~qd.run_config.RunConfig`, runs ask / evaluate / describe / tell cycles,
writes metrics lines and checkpoints, and restores itself from a checkpoint.

:mod:`qd.run` starts and resumes runs (one seed, or several in lockstep) with it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

import envs
from qd import run_folder as files
from qd.algorithms import Learner, lookup, policy_for
from qd.archive import Archive
from qd.behaviour import make_space
from qd.champions import NAME as CHAMPIONS
from qd.champions import Champions
from qd.evaluation import Outcomes, resolve_device
from qd.metrics import Tracker, grid_cells, uniformity
from qd.run_config import RunConfig, make_evaluator
from qd.run_folder import RunFileError
from qd.tensorboard import watchers


class Run:
    """One search: builds env, policy, space, algorithm and tracker from a config.

    ``evaluator``: share another run's evaluator (lockstep seeds); default: a new one, for
    ``searches`` searches in lockstep (they weigh in ``compile="auto"``'s choice).
    """

    def __init__(self, config: RunConfig, *, evaluator=None, searches: int = 1) -> None:
        self.config = config
        self.folder = Path(config.out)
        self.device = resolve_device(config.device)
        envs.plugins.import_modules(config.imports)
        self.env = envs.make(config.env, **config.env_options)
        self.spec = self.env.spec.to_dict()
        self.spec["name"] = config.env  # what envs.make rebuilds it from (archive headers)
        self.policy = policy_for(config.algorithm, self.env.spec, config.policy_hidden)
        self.evaluator = evaluator or make_evaluator(
            config, self.env, self.policy, self.device, searches=searches
        )
        variant = lookup(config.algorithm)
        settings = dict(config.algorithm_config)
        if "budget" in {f.name for f in dataclasses.fields(variant.config)}:
            settings.setdefault("budget", config.budget)
        self.algo_config = variant.make_config(settings)
        algo_cls = variant.algorithm
        space_device = getattr(self.algo_config, "ae_device", None)  # learned spaces
        self.space = make_space(
            self.algo_config.space,
            self.env.spec,
            seed=config.seed,
            device=resolve_device(space_device) if space_device else self.device,
            options=config.space_options,
        )
        extra = {"policy": self.policy} if algo_cls.needs_policy else {}
        if algo_cls.needs_space:  # learned spaces (TAXONS, STAX)
            extra["space"] = self.space
        self.algorithm = algo_cls(
            self.algo_config,
            genome_size=self.policy.genome_size,
            measure_dim=self.space.dim,
            env_spec=self.spec,
            device=self.device,
            seed=config.seed,
            **extra,
        )
        # what the evaluator records: the behaviour space's needs plus the algorithm's own
        self.recordings = {**self.space.recordings, **self.algorithm.recordings}
        if CHAMPIONS in self.algorithm.archives:
            raise ValueError(f"{config.algorithm} has an archive named {CHAMPIONS!r} (reserved)")
        # the best evaluated individuals (learners, which have no genome per episode, have none)
        self.champions = (
            None
            if self.interacts
            else Champions(
                genome_size=self.policy.genome_size, env_spec=self.spec, seed=config.seed
            )
        )
        self.tracker = Tracker(self.spec)
        self.watchers = watchers(self)  # TensorBoard (config.tensorboard)
        self.evaluations = 0
        self.wall_time = 0.0
        self.rollout_time = 0.0
        self.last_checkpoint = 0

    @property
    def finished(self) -> bool:
        """True once the budget is spent."""
        return self.evaluations >= self.config.budget

    @property
    def interacts(self) -> bool:
        """True for learners that step the env themselves (DvD-TD3)."""
        return isinstance(self.algorithm, Learner)

    # -- loop ----------------------------------------------------------------------------------
    def ask(self) -> torch.Tensor:
        """Genomes of the next generation."""
        start = time.perf_counter()
        genomes = self.algorithm.ask(self.config.budget - self.evaluations)
        self.wall_time += time.perf_counter() - start
        return genomes

    def tell(self, genomes: torch.Tensor, outcomes: Outcomes, rollout_s: float) -> dict:
        """Describe and tell the evaluated ``genomes``; returns the metrics line.

        ``rollout_s`` is this run's share of the evaluator's time (for the timing metrics).
        """
        start = time.perf_counter()
        outcomes = outcomes.to(self.device)
        if self.algorithm.describes_itself:
            descriptors = None  # the algorithm describes the outcomes with its own space
        else:
            descriptors = self.space.describe(outcomes)
        info = self.algorithm.tell(genomes, outcomes, descriptors)
        exploring = info.get("phase", "explore") == "explore"  # SERENE: NS generations only
        self.tracker.update(
            outcomes.descriptor, outcomes.fitness, outcomes.reward_area, exploring=exploring
        )
        self.champions.update(genomes, outcomes.fitness, outcomes.reward_area, outcomes.descriptor)
        self.evaluations += len(genomes)
        self.rollout_time += rollout_s
        self.wall_time += time.perf_counter() - start + rollout_s
        return self.metrics_line(info)

    def interact(self) -> dict:
        """One round of a learner that steps the env itself; returns the metrics line."""
        start = time.perf_counter()
        outcomes, info = self.algorithm.interact(self.env, self.config.budget - self.evaluations)
        self.rollout_time += info.pop("env_time_s", 0.0)
        self.tracker.update(outcomes.descriptor, outcomes.fitness, outcomes.reward_area)
        self.evaluations += len(outcomes)
        self.wall_time += time.perf_counter() - start
        return self.metrics_line(info)

    def step(self) -> dict:
        """One ask / evaluate / describe / tell cycle on this run's evaluator."""
        if self.interacts:
            return self.interact()
        genomes = self.ask()
        start = time.perf_counter()
        outcomes = self.evaluator.evaluate(genomes, **self.recordings)
        outcomes.fitness.sum().item()  # wait for the device before timing
        return self.tell(genomes, outcomes, time.perf_counter() - start)

    @property
    def archives(self) -> dict[str, Archive]:
        """The algorithm's archives plus ``champions`` (what checkpoints and ``archive/`` hold)."""
        archives = dict(self.algorithm.archives)
        if self.champions is not None:
            archives[CHAMPIONS] = self.champions.archive
        return archives

    def metrics_line(self, info: dict) -> dict:
        """The metrics.jsonl record after the latest generation."""
        archive = self.algorithm.archives[self.algorithm.main_archive]
        gt = archive.field("ground_truth")
        archive_counts = torch.bincount(grid_cells(gt, self.spec), minlength=self.tracker.n_cells)
        max_reward = self.tracker.max_reward.tolist()
        return {
            **info,
            "evaluations": self.evaluations,
            "coverage": self.tracker.coverage,
            "coverage_archive": float((archive_counts > 0).sum() / self.tracker.n_cells),
            "uniformity": self.tracker.uniformity,
            "uniformity_archive": uniformity(archive_counts),
            "archive_size": len(archive),
            "max_reward": max_reward,
            "max_return": self.tracker.max_return,
            "qd_score": self.tracker.qd_score,
            "evals_per_s": self.evaluations / max(self.wall_time, 1e-9),
            "wall_time_s": self.wall_time,
            "rollout_time_s": self.rollout_time,
        }

    def record(self, line: dict, metrics_file) -> None:
        """Append ``line`` to metrics.jsonl; checkpoint when one is due."""
        metrics_file.write(json.dumps(line) + "\n")
        metrics_file.flush()
        for watcher in self.watchers:
            watcher.metrics(self, line)
        ready = self.algorithm.ready_for_checkpoint()
        if self.evaluations - self.last_checkpoint >= self.config.checkpoint_every and ready:
            os.fsync(metrics_file.fileno())
            self.save_checkpoint()

    def finish(self) -> None:
        """Checkpoint the end (when the algorithm allows), then write final archives and plots."""
        if self.evaluations > self.last_checkpoint and self.algorithm.ready_for_checkpoint():
            with open(self.folder / "metrics.jsonl", "a") as handle:
                os.fsync(handle.fileno())
            self.save_checkpoint()
        files.write_archives(self.folder, self.archives)
        from qd.report import write_plots

        write_plots(self.folder, self.env)
        files.mark_finished(self.folder, self.evaluations)

    # -- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """Write a checkpoint folder atomically (temporary name, then rename)."""
        state = self.algorithm.state_dict()
        tensors = {f"algo.{k}": v for k, v in state["tensors"].items()}
        tensors.update({f"tracker.{k}": v for k, v in self.tracker.state_tensors().items()})
        meta = {
            "algorithm": state["meta"],
            "wall_time_s": self.wall_time,
            "rollout_time_s": self.rollout_time,
        }
        path = files.write_checkpoint(
            self.folder,
            self.evaluations,
            self.archives,
            tensors,
            meta,
            keep=self.config.keep_checkpoints,
        )
        self.last_checkpoint = self.evaluations
        for watcher in self.watchers:
            watcher.checkpoint(self)
        return path

    def load_checkpoint(self, folder: Path) -> None:
        """Restore algorithm, archives, tracker and counters from a checkpoint folder.

        Raises:
            RunFileError: a file of the checkpoint is damaged or does not fit this run.
        """
        archives, tensors, meta = files.read_checkpoint(folder, self.device)
        try:
            champions = archives.pop(CHAMPIONS, None)
            if champions is not None and self.champions is not None:
                self.champions.archive = champions
            algo_state = {
                "tensors": {k[5:]: v for k, v in tensors.items() if k.startswith("algo.")},
                "meta": meta["algorithm"],
            }
            self.algorithm.load_state_dict(algo_state, archives)
            self.tracker.load_state_tensors(
                {k[8:]: v for k, v in tensors.items() if k.startswith("tracker.")}
            )
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as err:
            raise RunFileError(f"{folder}: checkpoint does not fit this run ({err!r})") from None
        self.evaluations = int(meta["evaluations"])
        self.wall_time = float(meta["wall_time_s"])
        self.rollout_time = float(meta["rollout_time_s"])
        self.last_checkpoint = self.evaluations

    def prepare_resume(self) -> None:
        """Restore the latest complete checkpoint whose files match their checksums (damaged
        newer ones are set aside with a warning) and cut later metrics lines."""
        files.remove_partial_checkpoints(self.folder)
        found = files.checkpoints(self.folder)
        damaged: list[tuple[Path, RunFileError]] = []
        for path in reversed(found):
            try:
                files.verify_checkpoint(path)
                break
            except RunFileError as err:
                damaged.append((path, err))
        if found and len(damaged) == len(found):
            raise RunFileError(
                f"{damaged[0][1]}; no checkpoint of {self.folder} is readable (remove "
                f"{self.folder / 'checkpoints'} to run it again from zero)"
            )
        chosen = found[len(found) - len(damaged) - 1] if len(found) > len(damaged) else None
        lines = files.read_metrics(self.folder)
        recorded = lines[-1]["evaluations"] if lines else 0
        if chosen is not None and recorded < int(chosen.name):
            raise RunFileError(
                f"{self.folder / 'metrics.jsonl'}: ends at {recorded} evaluations but the "
                f"checkpoint {chosen.name} is later: lines are missing, a resume would leave a gap"
            )
        for path, err in damaged:
            aside = files.set_aside(path)
            print(
                f"qd: warning: {err}; checkpoint moved to {aside.name}, resuming from the "
                "previous one",
                file=sys.stderr,
            )
        if chosen is not None:
            self.load_checkpoint(chosen)
        files.unmark_finished(self.folder)
        files.truncate_metrics(self.folder, self.evaluations)
