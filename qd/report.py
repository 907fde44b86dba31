"""Reading finished (or interrupted) run folders: summaries and plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from qd.archive import Archive
from qd.plotting import plot_curves, plot_descriptors, plot_learned_space
from qd.ranking import top_individuals  # noqa: F401  (re-exported)
from qd.run_folder import archive_files, read_config, read_metrics
from qd.summary import format_lockstep, format_summary, summary  # noqa: F401  (re-exported)


def _population_plots(metrics: list[dict], plots: Path, env_name: str) -> list[Path]:
    """DvD's curves: population rewards, embedding distances and log det, lambda trace."""
    rows = [m for m in metrics if "log_det" in m]
    if not rows:
        return []
    evals = np.array([m["evaluations"] for m in rows])

    def series(*keys):
        return {k.replace("_", " "): np.array([m[k] for m in rows]) for k in keys}

    curves = [
        ("population.png", ("population_reward_mean", "population_reward_max"), "return"),
        ("diversity.png", ("embedding_distance_mean", "embedding_distance_min"), "distance"),
        ("log_det.png", ("log_det",), "log det K"),
        ("lambda.png", ("lambda",), "lambda"),
    ]
    return [
        plot_curves(
            evals,
            series(*keys),
            plots / name,
            xlabel="evaluations",
            ylabel=ylabel,
            title=f"{env_name}: {ylabel}",
        )
        for name, keys, ylabel in curves
    ]


def write_plots(folder: str | Path, env) -> list[Path]:
    """Coverage curve, reward curve and the archive on the environment's picture."""
    folder = Path(folder)
    plots = folder / "plots"
    metrics = read_metrics(folder)
    written = []
    if metrics:
        evals = np.array([m["evaluations"] for m in metrics])
        written.append(
            plot_curves(
                evals,
                {
                    "all explored": np.array([m["coverage"] for m in metrics]),
                    "archive": np.array([m["coverage_archive"] for m in metrics]),
                },
                plots / "coverage.png",
                xlabel="evaluations",
                ylabel="coverage (50x50 grid)",
                title=f"{env.spec.name}: ground-truth coverage",
            )
        )
        rewards = np.array([m["max_reward"] for m in metrics])
        if rewards.ndim == 2 and rewards.shape[1]:
            written.append(
                plot_curves(
                    evals,
                    {f"area {i}": rewards[:, i] for i in range(rewards.shape[1])},
                    plots / "reward.png",
                    xlabel="evaluations",
                    ylabel="max reward",
                    title=f"{env.spec.name}: best reward per area",
                )
            )
        written += _population_plots(metrics, plots, env.spec.name)
        written += _learned_space_curves(metrics, plots, env.spec.name)
    files = archive_files(folder)
    main = main_archive_name(folder)
    if main in files:
        archive = Archive.load(files[main])
        data = archive.data(["ground_truth", "objective"])
        if len(archive) and data["ground_truth"].shape[1] == 2:
            written.append(
                plot_descriptors(
                    env,
                    data["ground_truth"],
                    plots / "archive.png",
                    colours=data["objective"],
                    colour_label="reward",
                    title=f"{env.spec.name}: {main} archive ({len(archive)} individuals)",
                )
            )
        if len(archive) > 2 and "frames" in archive.field_list:  # a learned space
            written.append(
                plot_learned_space(
                    env,
                    archive.data(["measures"])["measures"],
                    data["ground_truth"],
                    plots / "learned_space.png",
                    title=f"{env.spec.name}: {main} archive in the learned space",
                )
            )
    return written


def _learned_space_curves(metrics: list[dict], plots: Path, env_name: str) -> list[Path]:
    """TAXONS/STAX: surprise of each generation and the AE's losses per training."""
    rows = [m for m in metrics if "surprise_mean" in m]
    written = []
    if rows:
        written.append(
            plot_curves(
                np.array([m["evaluations"] for m in rows]),
                {
                    "mean": np.array([m["surprise_mean"] for m in rows]),
                    "max": np.array([m["surprise_max"] for m in rows]),
                },
                plots / "surprise.png",
                xlabel="evaluations",
                ylabel="surprise (reconstruction MSE)",
                title=f"{env_name}: surprise of the evaluated individuals",
            )
        )
    trainings = [m for m in metrics if m.get("ae_val_loss") is not None]
    if trainings:
        written.append(
            plot_curves(
                np.array([m["evaluations"] for m in trainings]),
                {
                    "before training (validation)": np.array(
                        [m["ae_initial_val_loss"] for m in trainings]
                    ),
                    "after training (validation)": np.array([m["ae_val_loss"] for m in trainings]),
                    "after training (train)": np.array([m["ae_train_loss"] for m in trainings]),
                },
                plots / "ae_loss.png",
                xlabel="evaluations",
                ylabel="MSE",
                title=f"{env_name}: autoencoder loss at each training",
            )
        )
    return written


def env_of(folder_or_archive: str | Path, archive: Archive | None = None, *, imports=()) -> object:
    """The environment a run (or an archive file) was made in.

    Imports the modules ``imports`` first; the env may come from those modules only (a run
    folder naming another module, e.g. ``my_pkg.envs:make_env``, raises
    ``envs.plugins.ImportRefused`` naming the ``--import`` option to add).
    """
    import envs

    imports = list(imports or [])
    envs.plugins.import_modules(imports)
    path = Path(folder_or_archive)
    recorded: list[str] = []
    if path.is_dir():
        config = read_config(path)
        name, options = config["env"], config.get("env_options", {})
        recorded = [m for m in config.get("imports", []) if m not in imports]
    else:
        spec = (archive or Archive.load(path)).env_spec
        if not spec.get("name"):
            raise ValueError(f"{path}: the archive does not record its environment")
        name, options = spec["name"], spec.get("options", {})
    try:
        return envs.build(name, options, allow_import=imports)
    except KeyError:
        if recorded:
            flags = " ".join(f"--import {m}" for m in recorded)
            raise KeyError(
                f"{path}: environment {name!r} is registered by the module(s) the run "
                f"imported: add {flags}"
            ) from None
        raise


def main_archive_name(folder: str | Path) -> str:
    """The run's main archive: ``novelty`` for NS/SERENE, ``elites`` for the baselines."""
    from qd.algorithms import lookup

    try:
        return lookup(read_config(folder).get("algorithm")).algorithm.main_archive
    except KeyError:
        return "novelty"


def open_archive(target: str | Path, name: str | None = None) -> tuple[Archive, Path]:
    """Archive ``name`` (default: the run's main archive) of a run folder, or the archive file
    ``target`` itself."""
    path = Path(target)
    if path.is_file():
        return Archive.load(path), path
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such run folder or archive file")
    name = name or main_archive_name(path)
    files = archive_files(path)
    if name not in files:
        known = ", ".join(sorted(files)) or "none (the run has no archive yet)"
        raise ValueError(f"{path}: no archive named {name!r}; archives: {known}")
    return Archive.load(files[name]), files[name]


def per_area(archive: Archive) -> dict[str, dict]:
    """Per reward area of the archive's env: individuals, best and mean reward, best's index."""
    objective = archive.objectives
    areas = archive.field("reward_area")
    table = {}
    for area in range(int(archive.env_spec.get("reward_areas", 0))):
        index = torch.nonzero(areas == area).flatten()
        inside = objective[index]
        table[str(area)] = {
            "individuals": int(index.numel()),
            "max_reward": float(inside.max()) if index.numel() else 0.0,
            "mean_reward": float(inside.mean()) if index.numel() else 0.0,
            "best_index": int(index[inside.argmax()]) if index.numel() else None,
        }
    return table


def archive_summary(path: str | Path) -> dict:
    """Summary of a single archive file."""
    archive = Archive.load(path)
    objective = archive.objectives
    spec = archive.env_spec
    best = {area: row["max_reward"] for area, row in per_area(archive).items()}
    from qd.metrics import coverage_of

    cov = coverage_of(archive.field("ground_truth"), spec) if spec.get("grid_shape") else None
    return {
        "archive": str(path),
        "name": archive.name,
        "env": spec.get("name"),
        "size": len(archive),
        "fields": {f: list(shape) for f, (shape, _) in archive.schema.items()},
        "coverage": cov,
        "max_objective": float(objective.max()) if len(archive) else None,
        "max_reward_per_area": best,
    }
