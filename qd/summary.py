"""Summaries of run folders (``qd inspect RUN``), read without importing torch."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

from qd.archive.peek import archive_rows, per_area_arrays, read_arrays
from qd.run_folder import archive_files, finished_at, read_config, read_metrics

CHAMPIONS = "champions"  # qd.champions.NAME (that module imports torch)


def summary(folder: str | Path) -> dict:
    """The run's summary: what ran, how far, what it found."""
    from qd import __version__

    folder = Path(folder)
    config = read_config(folder)
    metrics = read_metrics(folder)
    last = metrics[-1] if metrics else {}
    files = archive_files(folder)
    archives = {name: archive_rows(path) for name, path in files.items()}
    emitters = {
        k: last[k]
        for k in (
            "active_emitters",
            "candidates",
            "emitter_evaluations",
            "emitter_evaluations_per_area",
        )
        if k in last
    }
    return {
        "run": str(folder),
        "algorithm": config["algorithm"],
        "env": config["env"],
        "seed": config["seed"],
        "budget": config["budget"],
        "evaluations": last.get("evaluations", 0),
        "finished": finished_at(folder) == config["budget"] == last.get("evaluations"),
        "archives": archives,
        "coverage": last.get("coverage", 0.0),
        "coverage_archive": last.get("coverage_archive", 0.0),
        "uniformity": last.get("uniformity", 0.0),
        "qd_score": last.get("qd_score", 0.0),
        "max_reward": last.get("max_reward", []),
        "max_return": last.get("max_return"),
        **({"champions": _champions(files[CHAMPIONS])} if CHAMPIONS in files else {}),
        "wall_time_s": last.get("wall_time_s", 0.0),
        "rollout_time_s": last.get("rollout_time_s", 0.0),
        **({"reward_archive": _reward_table(files)} if "reward" in files else {}),
        **({"emitters": emitters} if emitters else {}),
        "versions": {
            "qdtorch": __version__,
            "run_written_by": config.get("qdtorch_version"),
            "torch": _version("torch"),
            "ribs": _version("ribs"),
            "python": platform.python_version(),
        },
    }


def _reward_table(files: dict[str, Path]) -> dict[str, dict]:
    return per_area_arrays(files["reward"])


def _champions(path: Path) -> list[dict]:
    """The champions archive's rows: reward area, return and row."""
    header, arrays = read_arrays(path)
    size = int(header["size"])
    return [
        {"reward_area": int(area), "return": float(value), "index": i}
        for i, (area, value) in enumerate(
            zip(arrays["reward_area"][:size], arrays["objective"][:size], strict=True)
        )
    ]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def format_summary(info: dict) -> str:
    """Readable table of :func:`summary`."""
    rewards = ", ".join(f"area {i}: {r:.3f}" for i, r in enumerate(info["max_reward"])) or "-"
    archives = ", ".join(f"{k} {v}" for k, v in info["archives"].items()) or "-"
    rows = [
        ("run", info["run"]),
        ("algorithm", info["algorithm"]),
        ("env", info["env"]),
        ("seed", info["seed"]),
        (
            "evaluations",
            f"{info['evaluations']} / {info['budget']}"
            + ("" if info["finished"] else "  (not finished)"),
        ),
        ("archives", archives),
        (
            "coverage",
            f"{info['coverage']:.3f} (all explored), {info['coverage_archive']:.3f} (archive)",
        ),
        ("uniformity", f"{info['uniformity']:.3f}"),
        ("QD-score", f"{info['qd_score']:.3f}"),
        ("max reward", rewards),
        ("max return", "-" if info.get("max_return") is None else f"{info['max_return']:.3f}"),
        ("wall time", f"{info['wall_time_s']:.1f} s ({info['rollout_time_s']:.1f} s in rollouts)"),
    ]
    emitters = info.get("emitters", {})
    if emitters:
        rows.append(
            (
                "emitters",
                f"{emitters.get('active_emitters', 0)} active, "
                f"{emitters.get('candidates', 0)} candidates, "
                f"{emitters.get('emitter_evaluations', 0)} evaluations",
            )
        )
    champions = info.get("champions", [])
    if champions:
        rows.append(("champions", ", ".join(_champion_text(c) for c in champions)))
    spent = emitters.get("emitter_evaluations_per_area", [])
    for area, row in info.get("reward_archive", {}).items():
        evals = f", emitter evaluations {spent[int(area)]}" if int(area) < len(spent) else ""
        rows.append(
            (
                f"reward area {area}",
                f"{row['individuals']} in reward archive, best {row['max_reward']:.3f} "
                f"(#{row['best_index']}), mean {row['mean_reward']:.3f}{evals}",
            )
        )
    rows += [
        ("versions", ", ".join(f"{k} {v}" for k, v in info["versions"].items())),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _champion_text(row: dict) -> str:
    where = "outside areas" if row["reward_area"] < 0 else f"area {row['reward_area']}"
    return f"{where}: {row['return']:.3f} (#{row['index']})"


def format_lockstep(infos: list[dict]) -> str:
    """One line per seed of a lockstep folder (summaries from :func:`summary`)."""
    first = infos[0]
    done = sum(i["finished"] for i in infos)
    head = (
        f"{first['algorithm']} on {first['env']}, {len(infos)} seeds in lockstep "
        f"({done} finished)\n"
        f"{'seed':>6} {'evaluations':>19} {'coverage':>9} {'archive cov':>12}  max reward"
    )
    rows = []
    for i in infos:
        evals = f"{i['evaluations']}/{i['budget']}"
        rewards = ", ".join(f"{r:.3f}" for r in i["max_reward"]) or "-"
        rows.append(
            f"{i['seed']:>6} {evals:>19} {i['coverage']:>9.3f} {i['coverage_archive']:>12.3f}"
            f"  {rewards}{'' if i['finished'] else '  (not finished)'}"
        )
    return "\n".join([head, *rows])
