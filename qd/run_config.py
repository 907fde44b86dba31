"""Run settings: the :class:`RunConfig` dataclass and ``--set key=value`` overrides."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import envs
from qd.algorithms import lookup
from qd.behaviour.custom import space_setting
from qd.evaluation import resolve_device
from qd.integrity import non_finite

RUN_KEYS = (
    "checkpoint_every",
    "keep_checkpoints",
    "max_batch",
    "log_every",
    "threads",
    "rollout_workers",
)
# ``compile="auto"`` compiles from this many policy-steps (budget x episode length) on:
# ~100 s of eager HardMaze rollouts at B = 200 on one core, against a compile of 10-30 s.
AUTO_COMPILE_STEPS = 100_000_000
# built-in envs whose compiled blocks are checked bit-identical to eager (tests)
EXACT_COMPILED_ENVS = ("hardmaze", "curling", "billiard", "redundant-arm", "point-trap")
MAX_BUDGET = 2**53  # evaluations are counted exactly in floats up to here


def check_budget(budget: int) -> None:
    """Raise ValueError unless ``budget`` is an int in ``[1, 2**53]``."""
    if isinstance(budget, bool) or not isinstance(budget, int) or not 0 < budget <= MAX_BUDGET:
        raise ValueError(f"budget must be an integer in [1, 2**53], got {budget!r}")


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
        compile: run episodes in compiled blocks of steps (local evaluator; see
            ``LocalEvaluator``): ``True`` bit-identical to eager, ``"fused"`` faster with
            transcendental functions fused (rounding differs from eager), ``False`` eager,
            ``"auto"`` (default) compiled exactly where it pays and is checked bit-identical:
            a built-in env on the CPU, with at least ``AUTO_COMPILE_STEPS`` policy-steps in
            the budget (e.g. 50,000 HardMaze episodes); results do not depend on it.
        threads: torch CPU threads (0: torch's default, one per core, with rollouts on one
            thread, see ``LocalEvaluator``'s ``rollout_threads``; N: everything on N). Float
            reductions may round differently with another thread count, so a run resumes with
            its own.
        rollout_workers: Python threads stepping parts of a large rollout batch at once on the
            CPU (``LocalEvaluator``'s ``rollout_workers``; 1 = one thread). Results do not
            depend on it.
        policy_hidden: hidden layer sizes of the policy (default: the papers' sizes for the
            env, ``qd.policies.PAPER_HIDDEN``; two layers of 5 elsewhere).
        imports: modules imported before the env and space are built (modules that register
            your environments; ``qd run --import MODULE``); resume imports them again.
        space_options: keyword options of your own behaviour space (``algorithm_config
            ["space"] = "package.module:Class"``, or the class or a dataclass instance, which
            is recorded as its reference; see :mod:`qd.behaviour.custom`).
        tensorboard: also write every metrics line and the main archive's heatmaps at each
            checkpoint as TensorBoard events to ``out/tensorboard/`` (:mod:`qd.tensorboard`;
            needs ``pip install 'qdtorch[tensorboard]'``).

    ``env`` is a registered name, ``package.module:callable`` (returns a batched env from the
    keyword ``env_options``), a ``qdtorch.envs`` entry point, or ``gym:<id>`` (see
    :func:`envs.build`).
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
    compile: bool | str = "auto"
    threads: int = 0
    rollout_workers: int = 1
    policy_hidden: list[int] | None = None
    imports: list[str] = field(default_factory=list)
    space_options: dict = field(default_factory=dict)
    tensorboard: bool = False

    def __post_init__(self) -> None:
        self.record_space()

    def record_space(self) -> None:
        """Turn a behaviour-space class or object in ``algorithm_config["space"]`` into the
        reference and ``space_options`` that ``config.json`` records."""
        space = self.algorithm_config.get("space")
        if space is not None and not isinstance(space, str):
            self.algorithm_config = dict(self.algorithm_config)
            self.algorithm_config["space"], self.space_options = space_setting(
                space, self.space_options
            )

    def validate(self) -> None:
        """Raise ValueError/KeyError for bad settings (before anything is written)."""
        self.record_space()
        if not isinstance(self.imports, list | tuple) or not all(
            isinstance(m, str) and m for m in self.imports
        ):
            raise ValueError(f"imports must be a list of module names, got {self.imports!r}")
        if not isinstance(self.space_options, dict):
            raise ValueError(f"space_options must be a dict, got {self.space_options!r}")
        envs.plugins.import_modules(self.imports)
        check_budget(self.budget)
        for prefix, options in (
            ("", self.algorithm_config),
            ("env", self.env_options),
            ("space", self.space_options),
        ):
            bad = non_finite(options, prefix)
            if bad:
                raise ValueError(f"{bad} must be a finite number (not NaN or infinite)")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.checkpoint_every <= 0 or self.keep_checkpoints <= 0:
            raise ValueError("checkpoint_every and keep_checkpoints must be > 0")
        if not isinstance(self.threads, int) or self.threads < 0:
            raise ValueError(f"threads must be an int >= 0 (0: one per core), got {self.threads!r}")
        if not isinstance(self.rollout_workers, int) or self.rollout_workers <= 0:
            raise ValueError(f"rollout_workers must be an int > 0, got {self.rollout_workers!r}")
        if self.log_every <= 0 or self.workers <= 0:
            raise ValueError(
                f"log_every and workers must be > 0, got {self.log_every} and {self.workers}"
            )
        if self.max_batch != "auto" and (
            isinstance(self.max_batch, bool)
            or not isinstance(self.max_batch, int)
            or self.max_batch <= 0
        ):
            raise ValueError(f"max_batch must be a positive int or 'auto', got {self.max_batch!r}")
        if self.compile not in (False, True, "fused", "auto"):
            raise ValueError(
                f"compile must be false, true, 'fused' or 'auto', got {self.compile!r}"
            )
        if not isinstance(self.tensorboard, bool):
            raise ValueError(f"tensorboard must be true or false, got {self.tensorboard!r}")
        if self.tensorboard:
            from qd.tensorboard import summary_writer_class

            summary_writer_class()  # ImportError naming the extra, before anything is written
        if self.evaluator not in ("local", "ray"):
            raise ValueError(f"evaluator must be 'local' or 'ray', got {self.evaluator!r}")
        variant = lookup(self.algorithm)
        known = {f.name for f in dataclasses.fields(variant.config)}
        unknown = set(self.algorithm_config) - known
        if unknown:
            raise ValueError(
                f"unknown {self.algorithm} config key(s) {sorted(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        variant.make_config(self.algorithm_config)
        envs.make(self.env, **self.env_options)
        resolve_device(self.device)


def parse_overrides(config: RunConfig, pairs: list[str]) -> RunConfig:
    """Apply ``key=value`` overrides: algorithm fields, ``env.OPTION``, ``space.OPTION`` (your
    own space's keyword options), or run settings."""
    fields_by_name = {f.name: f for f in dataclasses.fields(lookup(config.algorithm).config)}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        if key.startswith("env."):
            config.env_options[key[4:]] = _parse_value(raw)
        elif key.startswith("space."):
            config.space_options[key[6:]] = _parse_value(raw)
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
            known = sorted([*fields_by_name, *RUN_KEYS, "policy_hidden"])
            known += ["env.<option>", "space.<option>"]
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
        value = kind(raw)
    except ValueError:
        raise ValueError(f"bad value {raw!r} for {key} (expected {kind.__name__})") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"bad value {raw!r} for {key} (expected a finite number)")
    return value


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


def parse_seeds(tokens: list[str | int]) -> list[int]:
    """Seeds from ``["0", "1", "2"]``, ``["0-9"]`` or a mix; each must be >= 0 and unique."""
    seeds: list[int] = []
    for token in tokens:
        text = str(token).strip()
        try:
            if "-" in text.lstrip("-") and not text.startswith("-"):
                low, high = (int(x) for x in text.split("-", 1))
                if high < low:
                    raise ValueError
                seeds.extend(range(low, high + 1))
            else:
                seeds.append(int(text))
        except ValueError:
            raise ValueError(f"bad seed {text!r}: use integers like 0 1 2 or a range 0-9") from None
    if not seeds:
        raise ValueError("--seeds needs at least one seed")
    if min(seeds) < 0:
        raise ValueError(f"seeds must be >= 0, got {min(seeds)}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds repeat: {seeds}")
    return seeds


def compile_choice(config: RunConfig, episode_length: int, device, searches: int = 1) -> bool | str:
    """What ``config.compile`` means for ``searches`` lockstep runs of ``config``: ``False``,
    ``True`` (exact) or ``"fused"``."""
    if config.compile != "auto":
        return config.compile
    return (
        config.env in EXACT_COMPILED_ENVS
        and str(device) == "cpu"
        and searches * config.budget * episode_length >= AUTO_COMPILE_STEPS
    )


def make_evaluator(config: RunConfig, env, policy, device, *, searches: int = 1):
    """The evaluator a run's config asks for: this process, or Ray actors."""
    if config.evaluator == "ray":
        from qd.evaluation_ray import RayEvaluator

        return RayEvaluator(
            config.env,
            policy,
            env_options=config.env_options,
            imports=config.imports,
            workers=config.workers,
            address=config.address,
            device=str(device),
            max_batch=config.max_batch,
            seed=config.seed,
        )
    from qd.evaluation import LocalEvaluator

    return LocalEvaluator(
        env,
        policy,
        device=device,
        max_batch=config.max_batch,
        seed=config.seed,
        compile=bool(compiled := compile_choice(config, env.spec.episode_length, device, searches)),
        compile_exact=compiled != "fused",
        rollout_threads=config.threads or 1,
        rollout_workers=config.rollout_workers,
    )
