"""``qd inspect``: summaries of run folders and archive files, top individuals.

A run folder's summary is read without importing torch (fast start); ``--top`` and archive files
load the archives with torch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qd.run_folder import archive_files, is_lockstep, read_config, seed_folders
from qd.summary import format_lockstep, format_summary, summary


def cmd_inspect(args: argparse.Namespace) -> int:
    target = Path(args.run)
    if is_lockstep(target):
        if args.top is not None:
            raise ValueError(f"{target} holds lockstep seeds; give --top a seed folder (seed-S)")
        infos = [summary(folder) for folder in seed_folders(target)]
        if args.json:
            print(json.dumps({"lockstep": str(target), "seeds": infos}, indent=2))
        else:
            print(format_lockstep(infos))
        return 0
    if args.top is not None:
        if args.top <= 0:
            raise ValueError(f"--top must be >= 1, got {args.top}")
        name, chosen = args.archive, ""
        if name is None and target.is_dir():
            from qd.ranking import archive_holding_best

            name = archive_holding_best(archive_files(target), _main_archive(target), args.by)
            chosen = f" (the archive holding the highest {args.by}; --archive NAME for another)"
        if args.by == "novelty":  # relative to the other rows: needs the archive itself
            from qd.ranking import top_individuals
            from qd.report import open_archive

            archive, path = open_archive(target, name)
            rows = top_individuals(archive, args.top, args.by)
        else:
            from qd.ranking import top_in_file

            path = _archive_path(target, name)
            rows = top_in_file(path, args.top, args.by)
        if args.json:
            print(json.dumps({"archive": str(path), "by": args.by, "rows": rows}, indent=2))
            return 0
        print(f"top {len(rows)} of {path} by {args.by}{chosen}:")
        for r in rows:
            rank = (
                "" if args.by in ("objective", "reward_area") else f"{args.by}={r[args.by]:.4f}  "
            )
            print(
                f"  #{r['index']:<6} {rank}objective={r['objective']:.4f}"
                f"  area={r['reward_area']:>2}  ground truth={r['ground_truth']}"
            )
        return 0
    if target.is_file():
        from qd.report import archive_summary

        info = archive_summary(target)
        if args.json:
            print(json.dumps(info, indent=2))
        else:
            for key, value in info.items():
                print(f"{key:<20} {value}")
        return 0
    if not target.exists():
        raise FileNotFoundError(f"{target}: no such run folder or archive file")
    info = summary(target)
    print(json.dumps(info, indent=2) if args.json else format_summary(info))
    return 0


def _main_archive(folder: Path) -> str:
    """The run's main archive (``novelty`` or ``elites``), named without importing algorithms."""
    from qd.catalog import main_archive

    return main_archive(read_config(folder).get("algorithm"))


def _archive_path(target: Path, name: str | None) -> Path:
    """The archive file ``target`` itself, or archive ``name`` of the run folder ``target``."""
    if target.is_file():
        return target
    if not target.exists():
        raise FileNotFoundError(f"{target}: no such run folder or archive file")
    name = name or _main_archive(target)
    files = archive_files(target)
    if name not in files:
        known = ", ".join(sorted(files)) or "none (the run has no archive yet)"
        raise ValueError(f"{target}: no archive named {name!r}; archives: {known}")
    return files[name]
