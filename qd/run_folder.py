"""The files of a run folder: config, metrics, checkpoints and archives.

A run folder holds::

    config.json       everything needed to rerun (and the run format version)
    metrics.jsonl     one JSON object per generation
    checkpoints/      the latest checkpoints, one folder each, named by evaluations; written to
                      a temporary name and renamed when complete
    archive/          final archives (safetensors + JSON header)
    plots/            coverage curve, final archive on the environment's picture

A lockstep folder (``qd run ... --seeds 0 1 2``) holds ``lockstep.json`` and one run folder
per seed, ``seed-S/``. This module only reads and writes files; :mod:`qd.run` drives runs.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported only where tensors are read or written
    import torch

    from qd.archive import Archive

RUN_FORMAT = 1
LOCKSTEP_FILE = "lockstep.json"
TIMING_KEYS = ("evals_per_s", "wall_time_s", "rollout_time_s")


# -- small helpers -----------------------------------------------------------------------------
def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries to disk (best effort)."""
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


# -- config ------------------------------------------------------------------------------------
def write_config(folder: Path, settings: dict, name: str = "config.json") -> None:
    """Write a run's (or a lockstep folder's) settings with the run format version."""
    from qd import __version__

    data = {**settings, "run_format": RUN_FORMAT, "qdtorch_version": __version__}
    atomic_write_text(Path(folder) / name, json.dumps(data, indent=2))


def read_config(folder: str | Path, name: str = "config.json") -> dict:
    """The saved config of a run folder, with clear errors for a missing or foreign folder."""
    from qd import __version__

    folder = Path(folder)
    path = folder / name
    if not path.is_file():
        if name == "config.json" and is_lockstep(folder):
            raise FileNotFoundError(
                f"{folder} holds lockstep seeds ({', '.join(p.name for p in seed_folders(folder))})"
                "; name one of them"
            )
        raise FileNotFoundError(f"{folder} is not a run folder (no {name})")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is corrupted: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is corrupted: expected a JSON object")
    if data.get("run_format") != RUN_FORMAT:
        raise ValueError(
            f"{folder} was written by qdtorch {data.get('qdtorch_version', '?')} with run format "
            f"{data.get('run_format')}; this qdtorch ({__version__}) reads run format {RUN_FORMAT}"
        )
    return data


def update_budget(folder: str | Path, budget: int, name: str = "config.json") -> None:
    """Set a run's (or a lockstep folder's) budget in its config file, keeping the rest."""
    path = Path(folder) / name
    data = read_config(folder, name)
    settings = data["config"] if name == LOCKSTEP_FILE else data
    algorithm_config = settings.get("algorithm_config") or {}
    if algorithm_config.get("budget") == settings.get("budget"):  # the algorithm's follows it
        algorithm_config["budget"] = budget
    settings["budget"] = budget
    atomic_write_text(path, json.dumps(data, indent=2))


# -- lockstep parents --------------------------------------------------------------------------
def seed_folder(parent: str | Path, seed: int) -> Path:
    """The run folder of ``seed`` inside a lockstep folder."""
    return Path(parent) / f"seed-{seed}"


def is_lockstep(folder: str | Path) -> bool:
    """True for a folder written by a lockstep run (``lockstep.json``)."""
    return (Path(folder) / LOCKSTEP_FILE).is_file()


def seed_folders(parent: str | Path) -> list[Path]:
    """The per-seed run folders of a lockstep folder, in the order of its seeds."""
    data = read_config(parent, LOCKSTEP_FILE)
    return [seed_folder(parent, s) for s in data["seeds"]]


def expand_runs(folders: list[str | Path]) -> list[Path]:
    """Run folders, with every lockstep folder replaced by its seeds' folders."""
    out: list[Path] = []
    for folder in folders:
        out.extend(seed_folders(folder) if is_lockstep(folder) else [Path(folder)])
    return out


# -- metrics -----------------------------------------------------------------------------------
def read_metrics(folder: str | Path) -> list[dict]:
    """All complete lines of ``metrics.jsonl``."""
    path = Path(folder) / "metrics.jsonl"
    lines = []
    if path.exists():
        for raw in path.read_text().splitlines():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                break
    return lines


def evaluations_done(folder: str | Path) -> int:
    """Evaluations a run has recorded: its last metrics line or latest checkpoint, the larger."""
    lines = read_metrics(folder)
    recorded = lines[-1].get("evaluations", 0) if lines and isinstance(lines[-1], dict) else 0
    found = checkpoints(Path(folder))
    return max(int(recorded), int(found[-1].name) if found else 0)


def truncate_metrics(folder: Path, evaluations: int) -> None:
    """Keep the metrics lines up to ``evaluations`` (later ones will be written again)."""
    path = Path(folder) / "metrics.jsonl"
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
    atomic_write_text(path, "".join(r + "\n" for r in kept))


def without_timing(line: dict) -> dict:
    """A metrics line without its wall-clock fields (what reruns reproduce exactly)."""
    return {k: v for k, v in line.items() if k not in TIMING_KEYS and not k.endswith("time_s")}


# -- checkpoints -------------------------------------------------------------------------------
def checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints of a run folder, oldest first."""
    root = Path(folder) / "checkpoints"
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.is_dir() and p.name.isdigit()]
    return sorted(done, key=lambda p: int(p.name))


def remove_partial_checkpoints(folder: Path) -> None:
    """Delete checkpoint folders a kill left half-written."""
    root = Path(folder) / "checkpoints"
    if root.is_dir():
        for stale in root.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)


def write_checkpoint(
    folder: Path,
    evaluations: int,
    archives: dict[str, Archive],
    tensors: dict[str, torch.Tensor],
    meta: dict,
    *,
    keep: int,
) -> Path:
    """Write a checkpoint folder atomically (temporary name, then rename); keep the last
    ``keep``."""
    from safetensors.torch import save_file

    root = Path(folder) / "checkpoints"
    final = root / f"{evaluations:012d}"
    tmp = root / f".tmp-{evaluations:012d}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for name, archive in archives.items():
        archive.save(tmp / f"archive-{name}.safetensors")
    meta = {**meta, "evaluations": evaluations, "archives": sorted(archives)}
    save_file(tensors, str(tmp / "state.safetensors"), metadata={"meta": json.dumps(meta)})
    fsync_dir(tmp)
    os.replace(tmp, final)
    fsync_dir(root)
    for old in checkpoints(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_checkpoint(
    path: Path, device: torch.device
) -> tuple[dict[str, Archive], dict[str, torch.Tensor], dict]:
    """Archives, tensors and meta of a checkpoint folder."""
    from safetensors import safe_open

    from qd.archive import Archive

    with safe_open(str(path / "state.safetensors"), framework="pt") as handle:
        meta = json.loads(handle.metadata()["meta"])
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    archives = {
        name: Archive.load(path / f"archive-{name}.safetensors", device=device)
        for name in meta["archives"]
    }
    return archives, tensors, meta


# -- archives ----------------------------------------------------------------------------------
def write_archives(folder: Path, archives: dict[str, Archive]) -> None:
    """Final archives of a run (``archive/NAME.safetensors``)."""
    for name, archive in archives.items():
        archive.save(Path(folder) / "archive" / f"{name}.safetensors")


def archive_files(folder: str | Path) -> dict[str, Path]:
    """Final archives of a run, or those of its latest checkpoint if it did not finish."""
    folder = Path(folder)
    final = sorted((folder / "archive").glob("*.safetensors"))
    if final:
        return {p.name.removesuffix(".safetensors"): p for p in final}
    found = checkpoints(folder)
    if not found:
        return {}
    files = sorted(found[-1].glob("archive-*.safetensors"))
    return {p.name.removeprefix("archive-").removesuffix(".safetensors"): p for p in files}
