"""Running searches: one seed, or several seeds of one algorithm in lockstep.

``start(config)`` runs one search in the run folder ``config.out`` (see :mod:`qd.run_folder`).
``start(config, seeds=[0, 1, 2])`` runs three independent searches in lockstep: every round,
each unfinished seed asks its genomes, all of them are rolled out in ONE evaluator call
(chunked by ``max_batch``) and the outcomes are split back. Seed S writes ``OUT/seed-S/``,
identical to a separate run with ``seed=S`` (archives, and metrics minus timing fields),
because evaluation is batch invariant. ``resume(folder)`` continues a run or a lockstep folder
from the last complete checkpoints and gives the same final archives as an uninterrupted run.
Each search is a :class:`qd.run_search.Run` (re-exported here as ``qd.run.Run``).
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import asdict
from pathlib import Path

import torch

from qd import run_folder as files
from qd.lockstep import drive  # noqa: F401  (re-exported: qd.run.drive)
from qd.run_config import (  # noqa: F401  (re-exported: the library's entry points)
    RUN_KEYS,
    RunConfig,
    check_budget,
    compile_choice,
    load_config_file,
    make_evaluator,
    parse_overrides,
    parse_seeds,
)
from qd.run_folder import RUN_FORMAT, RunFileError, read_config  # noqa: F401  (re-exported)
from qd.run_search import Run


def _build(configs: list[RunConfig]) -> list[Run]:
    """Runs of ``configs`` sharing the first one's evaluator (and its thread count)."""
    if configs[0].threads:
        torch.set_num_threads(configs[0].threads)
    first = Run(configs[0], searches=len(configs))
    return [first] + [Run(c, evaluator=first.evaluator) for c in configs[1:]]


def _run_to_end(runs: list[Run], progress: bool | None) -> None:
    try:
        drive(runs, progress=progress)
        for run in runs:
            run.finish()
    finally:
        runs[0].evaluator.close()
        for run in runs:
            for watcher in run.watchers:
                watcher.close()


def start(
    config: RunConfig, *, seeds: list[int] | list[str] | None = None, progress: bool | None = None
) -> Path:
    """Run a new search in ``config.out`` (must not exist or be empty) to the end.

    With ``seeds``, run one search per seed in lockstep: ``config.out`` becomes a lockstep
    folder with ``lockstep.json`` and one run folder ``seed-S/`` per seed (``config.seed`` is
    ignored). The settings are validated before anything is written; ``config.json`` is written
    before the env, policy and algorithm are built, so a run killed at any later point can be
    resumed (from zero before its first checkpoint). If building fails, the folder is removed.
    """
    config.validate()
    seeds = parse_seeds(seeds) if seeds is not None else None
    folder = Path(config.out)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(
            f"run folder {folder} exists and is not empty; pick another --out or use --resume"
        )
    if seeds is None:
        configs = [config]
    else:
        configs = [
            dataclasses.replace(config, seed=s, out=str(files.seed_folder(folder, s)))
            for s in seeds
        ]
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if seeds is not None:
            settings = {"seeds": seeds, "config": asdict(config)}
            files.write_config(folder, settings, files.LOCKSTEP_FILE)
        for child in configs:
            _write_new_run(child)
        runs = _build(configs)
    except Exception:
        _remove_contents(folder, remove_folder=created)
        raise
    _run_to_end(runs, progress)
    return folder


def _write_new_run(config: RunConfig) -> None:
    """config.json and an empty metrics.jsonl in a new run folder."""
    folder = Path(config.out)
    folder.mkdir(parents=True, exist_ok=True)
    files.write_config(folder, asdict(config))
    (folder / "metrics.jsonl").write_text("")


def _remove_contents(folder: Path, *, remove_folder: bool) -> None:
    """Undo a start that failed before its first evaluation."""
    if remove_folder:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for child in folder.iterdir():
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def resume(folder: str | Path, *, budget: int | None = None, progress: bool | None = None) -> Path:
    """Continue a run, or every seed of a lockstep folder, from the last complete checkpoints
    (a seed whose folder was never written starts from scratch).

    ``budget``: the new total budget in evaluations (``config.json`` is updated before the run
    continues); it may extend a finished run but never be below what was already done.
    """
    folder = Path(folder)
    if budget is not None:
        check_budget(budget)
    if files.is_lockstep(folder):
        data = files.read_config(folder, files.LOCKSTEP_FILE)
        base = _config_from(data["config"], folder, files.LOCKSTEP_FILE)
        configs, fresh = [], []
        for seed in parse_seeds(data["seeds"]):
            child = files.seed_folder(folder, seed)
            if (child / "config.json").is_file():
                configs.append(_config_from(read_config(child), child))
            else:
                configs.append(dataclasses.replace(base, seed=seed, out=str(child)))
                fresh.append(len(configs) - 1)
    else:
        configs, fresh = [_config_from(read_config(folder), folder)], []
    for i, config in enumerate(configs):
        done = 0 if i in fresh else files.evaluations_done(config.out)
        wanted = config.budget if budget is None else budget
        if wanted < done:
            where = "config.json says" if budget is None else "--budget"
            raise ValueError(
                f"{config.out}: {where} {wanted} evaluations but {done} were already done; "
                "a resume never shrinks a run (give --budget N >= that to extend it)"
            )
    if budget is not None:
        if files.is_lockstep(folder):
            files.update_budget(folder, budget, files.LOCKSTEP_FILE)
        for i, config in enumerate(configs):
            _set_budget(config, budget)
            if i not in fresh:
                files.update_budget(Path(config.out), budget)
    runs = _build(configs)
    for i, run in enumerate(runs):
        if i in fresh:
            _write_new_run(run.config)
        else:
            run.prepare_resume()
    _run_to_end(runs, progress)
    return folder


def _set_budget(config: RunConfig, budget: int) -> None:
    """Give ``config`` (and its algorithm's budget, when it followed the run's) a new budget."""
    if config.algorithm_config.get("budget") == config.budget:
        config.algorithm_config["budget"] = budget
    config.budget = budget


def _config_from(data: dict, folder: Path, name: str = "config.json") -> RunConfig:
    """The validated RunConfig of a run folder's ``config.json`` (errors name the file)."""
    data = {k: v for k, v in data.items() if k not in ("run_format", "qdtorch_version")}
    data["out"] = str(folder)
    known = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RunFileError(f"{folder / name}: unknown key(s) {unknown}")
    try:
        config = RunConfig(**data)
        config.validate()
    except (KeyError, TypeError, ValueError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        raise RunFileError(f"{folder / name}: {msg}") from None
    return config
