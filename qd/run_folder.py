"""The files of a run folder: config, metrics, checkpoints and archives.

A run folder holds::

    config.json       everything needed to rerun (and the run format version)
    metrics.jsonl     one JSON object per generation
    checkpoints/      the latest checkpoints, one folder each, named by evaluations; written to
                      a temporary name and renamed when complete; manifest.json holds the
                      sha256 of each file (a damaged one is renamed damaged-N on resume)
    archive/          final archives (safetensors + JSON header)
    finished.json     written last, when the run is finished: sha256 of the final archives
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

from qd.integrity import (
    MANIFEST,
    RunFileError,
    check_config,
    check_lockstep,
    parse_metrics,
    read_manifest,
    verify_manifest,
    write_manifest,
)

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
        raise RunFileError(f"{path}: corrupted ({err})") from None
    if not isinstance(data, dict):
        raise RunFileError(f"{path}: corrupted (expected a JSON object)")
    if data.get("run_format") != RUN_FORMAT:
        raise RunFileError(
            f"{path}: written by qdtorch {data.get('qdtorch_version', '?')} with run format "
            f"{data.get('run_format')!r}; this qdtorch ({__version__}) reads run format "
            f"{RUN_FORMAT}"
        )
    if name == LOCKSTEP_FILE:
        check_lockstep(path, data)
    else:
        check_config(path, data)
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
    """All complete lines of ``metrics.jsonl`` (a line cut by a kill at the end is left out).

    Raises:
        RunFileError: a line before the last one is unreadable, or a line is not a metrics
            object (the message names the file and line).
    """
    path = Path(folder) / "metrics.jsonl"
    if not path.exists():
        return []
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise RunFileError(f"{path}: corrupted (not UTF-8 text)") from None
    return parse_metrics(path, text)


def evaluations_done(folder: str | Path) -> int:
    """Evaluations a run has recorded: its last metrics line or latest checkpoint, the larger."""
    lines = read_metrics(folder)
    recorded = lines[-1]["evaluations"] if lines else 0
    found = checkpoints(Path(folder))
    return max(int(recorded), int(found[-1].name) if found else 0)


def truncate_metrics(folder: Path, evaluations: int) -> None:
    """Keep the metrics lines up to ``evaluations`` (later ones will be written again)."""
    path = Path(folder) / "metrics.jsonl"
    kept = [line for line in read_metrics(folder) if line["evaluations"] <= evaluations]
    atomic_write_text(path, "".join(json.dumps(line) + "\n" for line in kept))


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
    """Write a checkpoint folder atomically (temporary name, then rename), with a manifest of
    its files' sha256 sums; keep the last ``keep``."""
    from qd.archive.files import save_tensors

    root = Path(folder) / "checkpoints"
    final = root / f"{evaluations:012d}"
    tmp = root / f".tmp-{evaluations:012d}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for name, archive in archives.items():
        archive.save(tmp / f"archive-{name}.safetensors")
    meta = {**meta, "evaluations": evaluations, "archives": sorted(archives)}
    save_tensors(tensors, tmp / "state.safetensors", {"meta": json.dumps(meta)})
    names = ["state.safetensors", *(f"archive-{n}.safetensors" for n in archives)]
    write_manifest(tmp, names, evaluations=evaluations)
    fsync_dir(tmp)
    os.replace(tmp, final)
    fsync_dir(root)
    for old in checkpoints(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def written_before_manifests(path: Path) -> bool:
    """True for a checkpoint of a run written before checkpoints had manifests: neither it
    nor any other checkpoint of its run has one (a single missing manifest is damage)."""
    return not any((p / MANIFEST).exists() for p in Path(path).parent.iterdir() if p.is_dir())


def verify_checkpoint(path: Path) -> None:
    """Raise :class:`RunFileError` (naming the file) unless every file of the checkpoint
    ``path`` matches its manifest. Runs written before manifests existed are read unchecked
    (their archive files still carry their own checksums)."""
    if written_before_manifests(path):
        return
    data = verify_manifest(path)
    if "state.safetensors" not in data["files"] or data.get("evaluations") != int(path.name):
        raise RunFileError(f"{path / MANIFEST}: corrupted (not this checkpoint's manifest)")


def set_aside(path: Path) -> Path:
    """Rename a damaged checkpoint folder to ``damaged-NAME`` (kept, no longer read)."""
    aside = path.with_name(f"damaged-{path.name}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"damaged-{path.name}-{n}")
    os.replace(path, aside)
    return aside


def read_checkpoint(
    path: Path, device: torch.device
) -> tuple[dict[str, Archive], dict[str, torch.Tensor], dict]:
    """Archives, tensors and meta of a checkpoint folder (checksums verified first).

    Raises:
        RunFileError: a file is missing, damaged or foreign (the message names it).
    """
    from safetensors import safe_open

    from qd.archive import Archive

    verify_checkpoint(path)
    state = path / "state.safetensors"
    try:
        with safe_open(str(state), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {})["meta"])
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
        names = meta["archives"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise TypeError("'archives' is not a list of names")
        int(meta["evaluations"]), float(meta["wall_time_s"]), float(meta["rollout_time_s"])
    except Exception as err:  # safetensors' own errors, JSON, missing keys, wrong types
        raise RunFileError(f"{state}: not a readable checkpoint state ({err!r})") from None
    archives = {
        name: Archive.load(path / f"archive-{name}.safetensors", device=device) for name in names
    }
    return archives, tensors, meta


# -- archives ----------------------------------------------------------------------------------
FINISHED = "finished.json"


def write_archives(folder: Path, archives: dict[str, Archive]) -> None:
    """Final archives of a run (``archive/NAME.safetensors``)."""
    unmark_finished(folder)
    for name, archive in archives.items():
        archive.save(Path(folder) / "archive" / f"{name}.safetensors")


def mark_finished(folder: Path, evaluations: int) -> None:
    """Write ``finished.json`` (the sha256 of the final archives), last: the run is finished."""
    folder = Path(folder)
    names = sorted(f"archive/{p.name}" for p in (folder / "archive").glob("*.safetensors"))
    write_manifest(folder, names, name=FINISHED, evaluations=evaluations)
    fsync_dir(folder)


def unmark_finished(folder: Path) -> None:
    """Remove the finished marker (the final archives are about to change)."""
    (Path(folder) / FINISHED).unlink(missing_ok=True)


def finished_at(folder: str | Path) -> int | None:
    """Evaluations at which the run finished writing its final archives, or None if it did not
    (no readable ``finished.json``)."""
    try:
        evaluations = read_manifest(Path(folder), FINISHED).get("evaluations")
    except RunFileError:
        return None
    return evaluations if isinstance(evaluations, int) else None


def archive_files(folder: str | Path) -> dict[str, Path]:
    """Final archives of a finished run, else those of its latest checkpoint (else whatever
    final archives there are, for folders without checkpoints)."""
    folder = Path(folder)
    final = sorted((folder / "archive").glob("*.safetensors"))
    found = checkpoints(folder)
    if final and (finished_at(folder) is not None or not found):
        return {p.name.removesuffix(".safetensors"): p for p in final}
    if not found:
        return {}
    files = sorted(found[-1].glob("archive-*.safetensors"))
    return {p.name.removeprefix("archive-").removesuffix(".safetensors"): p for p in files}
