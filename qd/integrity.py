"""Checks on the files of a run folder, read without torch: manifests with a sha256 per file,
the types of ``config.json`` and of ``metrics.jsonl`` lines.

Every check raises :class:`RunFileError` (a ``ValueError``) whose message starts with the path
of the damaged file, so the CLI reports it in one line (exit 2).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

MANIFEST = "manifest.json"

# config.json keys and the JSON types they may hold (None: null allowed)
CONFIG_TYPES: dict[str, tuple] = {
    "algorithm": (str,),
    "env": (str,),
    "out": (str,),
    "budget": (int,),
    "seed": (int,),
    "device": (str,),
    "algorithm_config": (dict,),
    "env_options": (dict,),
    "checkpoint_every": (int,),
    "keep_checkpoints": (int,),
    "max_batch": (int, str),
    "log_every": (int,),
    "evaluator": (str,),
    "workers": (int,),
    "address": (str, type(None)),
    "compile": (bool, str),
    "threads": (int,),
    "rollout_workers": (int,),
    "policy_hidden": (list, type(None)),
    "imports": (list,),
    "space_options": (dict,),
    "tensorboard": (bool,),
    "run_format": (int,),
    "qdtorch_version": (str,),
}
CONFIG_REQUIRED = ("algorithm", "env", "budget", "seed")
# metrics.jsonl keys that readers format as numbers
METRIC_NUMBERS = (
    "coverage",
    "coverage_archive",
    "uniformity",
    "uniformity_archive",
    "archive_size",
    "qd_score",
    "evals_per_s",
    "wall_time_s",
    "rollout_time_s",
)


class RunFileError(ValueError):
    """A file of a run folder is truncated, corrupted, of the wrong type or foreign."""


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _type_ok(value, kinds: tuple) -> bool:
    if isinstance(value, bool) and bool not in kinds:
        return False  # JSON true/false is not an int here
    return isinstance(value, kinds)


def check_config(path: Path, data, *, required: tuple = CONFIG_REQUIRED) -> dict:
    """``data`` (the parsed ``config.json`` at ``path``) if its keys hold the right types."""
    if not isinstance(data, dict):
        raise RunFileError(f"{path}: corrupted (expected a JSON object, got {type(data).__name__})")
    missing = [k for k in required if k not in data]
    if missing:
        raise RunFileError(f"{path}: corrupted (no {', '.join(missing)})")
    for key, kinds in CONFIG_TYPES.items():
        if key in data and not _type_ok(data[key], kinds):
            names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
            raise RunFileError(f"{path}: {key!r} must be {names}, got {data[key]!r}")
    if "imports" in data and not all(isinstance(m, str) for m in data["imports"]):
        raise RunFileError(f"{path}: 'imports' must be a list of module names")
    return data


def check_lockstep(path: Path, data) -> dict:
    """``data`` (the parsed ``lockstep.json``) if it holds its seeds and a valid config."""
    if not isinstance(data, dict):
        raise RunFileError(f"{path}: corrupted (expected a JSON object)")
    seeds = data.get("seeds")
    if not isinstance(seeds, list) or not seeds or not all(_type_ok(s, (int,)) for s in seeds):
        raise RunFileError(f"{path}: 'seeds' must be a list of integers, got {seeds!r}")
    check_config(path, data.get("config"))
    return data


def check_metrics_line(path: Path, number: int, line) -> dict:
    """Line ``number`` (1-based) of ``metrics.jsonl`` if it is a metrics object."""
    where = f"{path}: line {number}"
    if not isinstance(line, dict):
        raise RunFileError(f"{where} is not a JSON object (got {type(line).__name__})")
    evaluations = line.get("evaluations")
    if not _type_ok(evaluations, (int,)) or evaluations < 0:
        raise RunFileError(f"{where}: 'evaluations' must be an integer >= 0, got {evaluations!r}")
    for key in METRIC_NUMBERS:
        if key in line and not _is_number(line[key]):
            raise RunFileError(f"{where}: {key!r} must be a number, got {line[key]!r}")
    rewards = line.get("max_reward", [])
    if not isinstance(rewards, list) or not all(_is_number(r) for r in rewards):
        raise RunFileError(f"{where}: 'max_reward' must be a list of numbers, got {rewards!r}")
    if line.get("max_return") is not None and not _is_number(line["max_return"]):
        raise RunFileError(f"{where}: 'max_return' must be a number, got {line['max_return']!r}")
    return line


def parse_metrics(path: Path, text: str) -> list[dict]:
    """The lines of ``metrics.jsonl``; a last line without its newline (a write cut by a kill)
    is left out, any other unreadable line raises :class:`RunFileError`."""
    raws = text.split("\n")
    lines = []
    for number, raw in enumerate(raws, 1):
        last = number == len(raws)  # text after the final newline: complete lines end in one
        if not raw.strip():
            if last:
                continue
            raise RunFileError(f"{path}: line {number} is empty")
        try:
            line = json.loads(raw)
        except json.JSONDecodeError as err:
            if last:
                break
            raise RunFileError(f"{path}: line {number} is not valid JSON ({err})") from None
        lines.append(check_metrics_line(path, number, line))
    for number, (before, after) in enumerate(zip(lines, lines[1:], strict=False), 2):
        if after["evaluations"] < before["evaluations"]:
            raise RunFileError(f"{path}: line {number} goes back in evaluations")
    return lines


def non_finite(value, name: str) -> str | None:
    """The first setting inside ``value`` (dicts and lists searched) that is NaN or infinite,
    named like ``sigma`` or ``env.scale[1]``; None if all are finite."""
    if isinstance(value, float) and not math.isfinite(value):
        return name
    if isinstance(value, dict):
        items = ((f"{name}.{k}" if name else str(k), v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"{name}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for key, item in items:
        found = non_finite(item, key)
        if found:
            return found
    return None


# -- manifests -----------------------------------------------------------------------------------
def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes."""
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def write_manifest(folder: Path, names: list[str], *, name: str = MANIFEST, **extra) -> Path:
    """Write the manifest ``folder/name``: the sha256 of each file ``names`` (relative to
    ``folder``) plus ``extra`` (a temporary file, fsync, then a rename)."""
    folder = Path(folder)
    data = {**extra, "files": {n: file_sha256(folder / n) for n in sorted(names)}}
    path = folder / name
    tmp = path.with_name(name + ".tmp")
    with open(tmp, "w") as handle:
        handle.write(json.dumps(data, indent=2))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def read_manifest(folder: Path, name: str = MANIFEST) -> dict:
    """The manifest ``folder/name``, with clear errors for a missing or damaged one."""
    path = Path(folder) / name
    if not path.is_file():
        raise RunFileError(f"{path}: missing (the folder is incomplete)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunFileError(f"{path}: corrupted ({err})") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise RunFileError(f"{path}: corrupted (no 'files' table of sha256 sums)")
    return data


def verify_manifest(folder: Path, name: str = MANIFEST) -> dict:
    """The manifest ``folder/name`` after checking every file it lists against its sha256."""
    folder = Path(folder)
    data = read_manifest(folder, name)
    for listed, expected in data["files"].items():
        path = folder / listed
        if Path(listed).is_absolute() or ".." in Path(listed).parts:
            raise RunFileError(f"{folder / name}: corrupted (file name {listed!r})")
        if not path.is_file():
            raise RunFileError(f"{path}: missing")
        if file_sha256(path) != expected:
            raise RunFileError(f"{path}: checksum mismatch, the file is corrupted")
    return data
