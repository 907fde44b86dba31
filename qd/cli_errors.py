"""How ``qd`` reports what stopped a command: one line on stderr, never a traceback.

Read without torch (``qd inspect`` starts fast): a bad value or damaged file (exit 2), a full
disk or read-only folder (exit 2, the run folder stays resumable), Ctrl-C (exit 130).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def run_folder_of(path: str | Path) -> Path | None:
    """The run (or lockstep) folder that ``path`` lies in, or None."""
    here = Path(path).resolve()
    for folder in [here, *here.parents]:
        if (folder / "lockstep.json").is_file() or (
            (folder / "config.json").is_file() and (folder / "metrics.jsonl").is_file()
        ):
            return folder
    return None


def refuse_inside_run(out: str | Path, option: str = "--out") -> None:
    """Raise ValueError if ``out`` would be written inside a run folder (only ``qd run``
    writes there)."""
    folder = run_folder_of(Path(out).parent) if Path(out).parent != Path(out) else None
    if folder is not None:
        raise ValueError(
            f"{option} {out} is inside the run folder {folder}; only `qd run` writes there: "
            "pick a path outside it"
        )


def check_positive(**values: int | None) -> None:
    """Raise ValueError naming the first option (``sample=0`` -> ``--sample``) below 1."""
    for name, value in values.items():
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def _where(folder: Path) -> str:
    """``at N evaluations (last checkpoint: M)`` for a run folder, as far as it can be read."""
    from qd.run_folder import checkpoints, is_lockstep, read_metrics

    if is_lockstep(folder):
        return ""
    try:
        lines = read_metrics(folder)
    except ValueError:
        return ""
    done = lines[-1]["evaluations"] if lines else 0
    found = checkpoints(folder)
    last = f"last checkpoint at {int(found[-1].name)}" if found else "no checkpoint yet"
    return f" after {done} evaluations ({last})"


def interrupted(args: argparse.Namespace) -> str:
    """The line printed on Ctrl-C: where a run stopped and how to continue it."""
    folder = getattr(args, "run_folder", None)
    if folder is None or not Path(folder).is_dir():
        return "qd: interrupted"
    return f"qd: interrupted{_where(Path(folder))}; continue with: qd run --resume {folder}"


def os_error(err: OSError, args: argparse.Namespace) -> str:
    """One line for a failed read or write (disk full, read-only folder, permissions)."""
    text = f"{err.filename}: {err.strerror}" if err.filename and err.strerror else str(err)
    folder = getattr(args, "run_folder", None)
    if folder is not None and Path(folder).is_dir():
        text += (
            f"; the run folder {folder} stays resumable: fix this, then qd run --resume {folder}"
        )
    return f"qd: error: {text}"
