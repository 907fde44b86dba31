"""Run management: run folders, budget loop, metrics, atomic checkpoints, exact resume.

A run folder holds::

    config.json       everything needed to rerun (and the run format version)
    metrics.jsonl     one JSON object per generation
    checkpoints/      the latest ``keep_checkpoints`` checkpoints, one folder each, named by
                      evaluations; written to a temporary name and renamed when complete
    archive/          final archives (safetensors + JSON header)
    plots/            coverage curve, final archive on the environment's picture

``run(config)`` starts a run; ``resume(folder)`` continues from the last complete checkpoint
and gives exactly the same final archives as an uninterrupted run with the same seed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

import envs
from qd.algorithms import lookup, policy_for
from qd.archive import Archive
from qd.behaviour import make_space
from qd.evaluation import LocalEvaluator, resolve_device
from qd.metrics import Tracker, grid_cells, uniformity

RUN_FORMAT = 1
RUN_KEYS = ("checkpoint_every", "keep_checkpoints", "max_batch", "log_every")


@dataclass
class RunConfig:
    """Settings of one run (written to ``config.json``).

    Attributes:
        algorithm: algorithm name (``qd run --help`` lists them).
        env: environment name.
        budget: evaluations to spend (the initial population counts).
        seed: seed of everything random.
        device: ``cpu`` or ``cuda[:N]``.
        out: run folder.
        algorithm_config: overrides of the algorithm's config fields.
        env_options: keyword options of ``envs.make``.
        checkpoint_every: evaluations between checkpoints.
        keep_checkpoints: checkpoints kept on disk.
        max_batch: most episodes stepped together, or ``"auto"`` (from free memory).
        log_every: evaluations between plain log lines when output is not a terminal.
        evaluator: ``local`` (this process) or ``ray`` (Ray actors).
        workers: Ray actors (``ray`` evaluator).
        address: Ray cluster address (``ray`` evaluator; default: a local Ray instance).
        compile: ``torch.compile`` the rollout step (local evaluator; see ``LocalEvaluator``).
        policy_hidden: hidden layer sizes of the policy (default: the papers' sizes for the
            env, ``qd.policies.PAPER_HIDDEN``; two layers of 5 elsewhere).
    """

    algorithm: str
    env: str
    out: str
    budget: int = 100_000
    seed: int = 0
    device: str = "cpu"
    algorithm_config: dict = field(default_factory=dict)
    env_options: dict = field(default_factory=dict)
    checkpoint_every: int = 10_000
    keep_checkpoints: int = 2
    max_batch: int | str = 4096
    log_every: int = 10_000
    evaluator: str = "local"
    workers: int = 2
    address: str | None = None
    compile: bool = False
    policy_hidden: list[int] | None = None

    def validate(self) -> None:
        """Raise ValueError/KeyError for bad settings (before anything is written)."""
        if self.budget <= 0:
            raise ValueError(f"budget must be > 0, got {self.budget}")
        if self.checkpoint_every <= 0 or self.keep_checkpoints <= 0:
            raise ValueError("checkpoint_every and keep_checkpoints must be > 0")
        if self.evaluator not in ("local", "ray"):
            raise ValueError(f"evaluator must be 'local' or 'ray', got {self.evaluator!r}")
        config_cls, _ = lookup(self.algorithm)
        known = {f.name for f in dataclasses.fields(config_cls)}
        unknown = set(self.algorithm_config) - known
        if unknown:
            raise ValueError(
                f"unknown {self.algorithm} config key(s) {sorted(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        config_cls(**self.algorithm_config)
        envs.make(self.env, **self.env_options)
        resolve_device(self.device)


def parse_overrides(config: RunConfig, pairs: list[str]) -> RunConfig:
    """Apply ``key=value`` overrides: algorithm fields, ``env.OPTION``, or run settings."""
    config_cls, _ = lookup(config.algorithm)
    fields_by_name = {f.name: f for f in dataclasses.fields(config_cls)}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        if key.startswith("env."):
            config.env_options[key[4:]] = _parse_value(raw)
        elif key == "max_batch" and raw == "auto":
            config.max_batch = "auto"
        elif key == "policy_hidden":
            config.policy_hidden = _hidden_sizes(raw)
        elif key in RUN_KEYS:
            try:
                setattr(config, key, int(raw))
            except ValueError:
                raise ValueError(f"bad value {raw!r} for {key} (expected an integer)") from None
        elif key in fields_by_name:
            default = fields_by_name[key].default
            if default is None or default is dataclasses.MISSING:  # optional or list fields
                config.algorithm_config[key] = None if raw.lower() == "none" else _parse_value(raw)
            else:
                config.algorithm_config[key] = _coerce(raw, type(default), key)
        else:
            known = sorted([*fields_by_name, *RUN_KEYS, "policy_hidden"]) + ["env.<option>"]
            raise ValueError(f"unknown config key {key!r}; known: {', '.join(known)}")
    return config


def _hidden_sizes(raw: str) -> list[int]:
    sizes = _parse_value(raw)
    if isinstance(sizes, int):
        sizes = [sizes]
    if not isinstance(sizes, list) or not all(isinstance(h, int) and h > 0 for h in sizes):
        raise ValueError(f"policy_hidden expects a list of positive ints like [5,5], got {raw!r}")
    return sizes


def _parse_value(raw: str):
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _coerce(raw: str, kind: type, key: str):
    try:
        if kind is bool:
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1")
        return kind(raw)
    except ValueError:
        raise ValueError(f"bad value {raw!r} for {key} (expected {kind.__name__})") from None


def load_config_file(path: str | Path) -> dict:
    """Read a JSON config file (keys of :class:`RunConfig`)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"config file {path} does not exist") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"config file {path} is not valid JSON: {err}") from None
    known = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = set(data) - known - {"run_format", "qdtorch_version"}
    if unknown:
        raise ValueError(f"config file {path}: unknown key(s) {sorted(unknown)}")
    return data


class Run:
    """One run: builds env, policy, evaluator, space, algorithm and tracker from a config."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.folder = Path(config.out)
        self.device = resolve_device(config.device)
        self.env = envs.make(config.env, **config.env_options)
        self.spec = self.env.spec.to_dict()
        self.policy = policy_for(config.algorithm, self.env.spec, config.policy_hidden)
        if config.evaluator == "ray":
            from qd.evaluation import RayEvaluator

            self.evaluator = RayEvaluator(
                config.env,
                self.policy,
                env_options=config.env_options,
                workers=config.workers,
                address=config.address,
                device=str(self.device),
                max_batch=config.max_batch,
                seed=config.seed,
            )
        else:
            self.evaluator = LocalEvaluator(
                self.env,
                self.policy,
                device=self.device,
                max_batch=config.max_batch,
                seed=config.seed,
                compile=config.compile,
            )
        config_cls, algo_cls = lookup(config.algorithm)
        settings = dict(config.algorithm_config)
        if "budget" in {f.name for f in dataclasses.fields(config_cls)}:
            settings.setdefault("budget", config.budget)
        self.algo_config = config_cls(**settings)
        space_device = getattr(self.algo_config, "ae_device", None)  # learned spaces
        self.space = make_space(
            self.algo_config.space,
            self.env.spec,
            seed=config.seed,
            device=resolve_device(space_device) if space_device else self.device,
        )
        extra = {"policy": self.policy} if getattr(algo_cls, "needs_policy", False) else {}
        if getattr(algo_cls, "needs_space", False):  # learned spaces (TAXONS, STAX)
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
        self.recordings = {**self.space.recordings, **getattr(self.algorithm, "recordings", {})}
        self.tracker = Tracker(self.spec)
        self.evaluations = 0
        self.wall_time = 0.0
        self.rollout_time = 0.0

    # -- folder --------------------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.folder / "checkpoints"

    def write_config(self) -> None:
        from qd import __version__

        data = {**asdict(self.config), "run_format": RUN_FORMAT, "qdtorch_version": __version__}
        _atomic_write_text(self.folder / "config.json", json.dumps(data, indent=2))

    # -- loop ----------------------------------------------------------------------------------
    def step(self) -> dict:
        """One ask / evaluate / describe / tell cycle; returns its metrics line."""
        start = time.perf_counter()
        if hasattr(self.algorithm, "interact"):  # learners that step the env themselves (TD3)
            outcomes, info = self.algorithm.interact(
                self.env, self.config.budget - self.evaluations
            )
            self.rollout_time += info.pop("env_time_s", 0.0)
            self.tracker.update(outcomes.descriptor, outcomes.fitness, outcomes.reward_area)
            self.evaluations += len(outcomes)
            self.wall_time += time.perf_counter() - start
            return self.metrics_line(info)
        genomes = self.algorithm.ask(self.config.budget - self.evaluations)
        t0 = time.perf_counter()
        outcomes = self.evaluator.evaluate(genomes, **self.recordings).to(self.device)
        outcomes.fitness.sum().item()  # wait for the device before timing
        self.rollout_time += time.perf_counter() - t0
        if getattr(self.algorithm, "describes_itself", False):
            descriptors = None  # the algorithm describes the outcomes with its own space
        else:
            descriptors = self.space.describe(outcomes)
        info = self.algorithm.tell(genomes, outcomes, descriptors)
        exploring = info.get("phase", "explore") == "explore"  # SERENE: NS generations only
        self.tracker.update(
            outcomes.descriptor, outcomes.fitness, outcomes.reward_area, exploring=exploring
        )
        self.evaluations += len(genomes)
        self.wall_time += time.perf_counter() - start
        return self.metrics_line(info)

    def metrics_line(self, info: dict) -> dict:
        """The metrics.jsonl record after the latest generation."""
        archive = self.algorithm.archives[getattr(self.algorithm, "main_archive", "novelty")]
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
            "qd_score": self.tracker.qd_score,
            "evals_per_s": self.evaluations / max(self.wall_time, 1e-9),
            "wall_time_s": self.wall_time,
            "rollout_time_s": self.rollout_time,
        }

    def loop(self, *, progress: bool | None = None) -> None:
        """Spend the budget, writing metrics and checkpoints as it goes."""
        cfg = self.config
        metrics_path = self.folder / "metrics.jsonl"
        bar = _Progress(cfg.budget, self.evaluations, cfg.log_every, progress)
        last_ckpt = self.latest_checkpoint_evaluations()
        with open(metrics_path, "a") as metrics_file:
            while self.evaluations < cfg.budget:
                line = self.step()
                metrics_file.write(json.dumps(line) + "\n")
                metrics_file.flush()
                bar.update(line)
                ready = getattr(self.algorithm, "ready_for_checkpoint", lambda: True)()
                if self.evaluations - last_ckpt >= cfg.checkpoint_every and ready:
                    metrics_file.flush()
                    os.fsync(metrics_file.fileno())
                    self.save_checkpoint()
                    last_ckpt = self.evaluations
        bar.close()

    def finish(self) -> None:
        """Write final archives and plots."""
        for name, archive in self.algorithm.archives.items():
            archive.save(self.folder / "archive" / f"{name}.safetensors")
        from qd.report import write_plots

        write_plots(self.folder, self.env)

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        if not self.checkpoint_dir.is_dir():
            return []
        done = [p for p in self.checkpoint_dir.iterdir() if p.is_dir() and p.name.isdigit()]
        return sorted(done, key=lambda p: int(p.name))

    def latest_checkpoint_evaluations(self) -> int:
        found = self.checkpoints()
        return int(found[-1].name) if found else 0

    def save_checkpoint(self) -> Path:
        """Write a checkpoint folder atomically (temporary name, then rename)."""
        from safetensors.torch import save_file

        final = self.checkpoint_dir / f"{self.evaluations:012d}"
        tmp = self.checkpoint_dir / f".tmp-{self.evaluations:012d}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        for name, archive in self.algorithm.archives.items():
            archive.save(tmp / f"archive-{name}.safetensors")
        state = self.algorithm.state_dict()
        tensors = {f"algo.{k}": v for k, v in state["tensors"].items()}
        tensors.update({f"tracker.{k}": v for k, v in self.tracker.state_tensors().items()})
        meta = {
            "algorithm": state["meta"],
            "evaluations": self.evaluations,
            "wall_time_s": self.wall_time,
            "rollout_time_s": self.rollout_time,
            "archives": sorted(self.algorithm.archives),
        }
        save_file(tensors, str(tmp / "state.safetensors"), metadata={"meta": json.dumps(meta)})
        _fsync_dir(tmp)
        os.replace(tmp, final)
        _fsync_dir(self.checkpoint_dir)
        for old in self.checkpoints()[: -self.config.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def load_checkpoint(self, folder: Path) -> None:
        """Restore algorithm, archives, tracker and counters from a checkpoint folder."""
        from safetensors import safe_open

        with safe_open(str(folder / "state.safetensors"), framework="pt") as handle:
            meta = json.loads(handle.metadata()["meta"])
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
        archives = {
            name: Archive.load(folder / f"archive-{name}.safetensors", device=self.device)
            for name in meta["archives"]
        }
        algo_state = {
            "tensors": {k[5:]: v for k, v in tensors.items() if k.startswith("algo.")},
            "meta": meta["algorithm"],
        }
        self.algorithm.load_state_dict(algo_state, archives)
        self.tracker.load_state_tensors(
            {k[8:]: v for k, v in tensors.items() if k.startswith("tracker.")}
        )
        self.evaluations = int(meta["evaluations"])
        self.wall_time = float(meta["wall_time_s"])
        self.rollout_time = float(meta["rollout_time_s"])


class _Progress:
    """tqdm bar on a terminal; plain log lines every ``log_every`` evaluations otherwise."""

    def __init__(self, total: int, start: int, log_every: int, progress: bool | None) -> None:
        self.tty = sys.stderr.isatty() if progress is None else progress
        self.log_every = max(1, log_every)
        self.next_log = (start // self.log_every + 1) * self.log_every
        self.bar = None
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="eval", dynamic_ncols=True)

    def update(self, line: dict) -> None:
        best = max(line["max_reward"], default=0.0)
        if self.bar is not None:
            self.bar.update(line["evaluations"] - self.bar.n)
            self.bar.set_postfix(
                cov=f"{line['coverage']:.3f}",
                best=f"{best:.3f}",
                rate=f"{line['evals_per_s']:.0f}/s",
            )
        elif line["evaluations"] >= self.next_log:
            print(
                f"evaluations {line['evaluations']}: coverage {line['coverage']:.3f} "
                f"(archive {line['coverage_archive']:.3f}), best reward {best:.3f}, "
                f"archive {line['archive_size']}, {line['evals_per_s']:.0f} evals/s",
                flush=True,
            )
            while self.next_log <= line["evaluations"]:
                self.next_log += self.log_every

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def start(config: RunConfig, *, progress: bool | None = None) -> Path:
    """Start a new run in ``config.out`` (must not exist or be empty) and run it to the end."""
    config.validate()
    folder = Path(config.out)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(
            f"run folder {folder} exists and is not empty; pick another --out or use --resume"
        )
    folder.mkdir(parents=True, exist_ok=True)
    run = Run(config)
    try:
        run.write_config()
        (folder / "metrics.jsonl").write_text("")
        run.loop(progress=progress)
        run.finish()
    finally:
        run.evaluator.close()
    return folder


def read_config(folder: str | Path) -> dict:
    """The saved config of a run folder, with clear errors for a missing or foreign folder."""
    from qd import __version__

    folder = Path(folder)
    path = folder / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a run folder (no config.json)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is corrupted: {err}") from None
    if data.get("run_format") != RUN_FORMAT:
        raise ValueError(
            f"{folder} was written by qdtorch {data.get('qdtorch_version', '?')} with run format "
            f"{data.get('run_format')}; this qdtorch ({__version__}) reads run format {RUN_FORMAT}"
        )
    return data


def resume(folder: str | Path, *, progress: bool | None = None) -> Path:
    """Continue a run from its last complete checkpoint (or from scratch if there is none)."""
    folder = Path(folder)
    data = read_config(folder)
    data.pop("run_format", None)
    data.pop("qdtorch_version", None)
    data["out"] = str(folder)
    config = RunConfig(**data)
    run = Run(config)
    if run.checkpoint_dir.is_dir():
        for stale in run.checkpoint_dir.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
    found = run.checkpoints()
    if found:
        run.load_checkpoint(found[-1])
    _truncate_metrics(folder / "metrics.jsonl", run.evaluations)
    try:
        run.loop(progress=progress)
        run.finish()
    finally:
        run.evaluator.close()
    return folder


def _truncate_metrics(path: Path, evaluations: int) -> None:
    """Keep the metrics lines up to the checkpoint (later ones will be written again)."""
    kept = []
    if path.exists():
        for raw in path.read_text().splitlines():
            try:
                line = json.loads(raw)
            except json.JSONDecodeError:
                break  # a line cut by the kill
            if line.get("evaluations", 0) > evaluations:
                break
            kept.append(raw)
    _atomic_write_text(path, "".join(r + "\n" for r in kept))
