"""Run algorithms x environments x seeds at one budget and write one results table.

Usage::

    python benchmarks/compare.py --algorithms ns serene me cma-me nslc nsga2 cma-es random \
        --envs hardmaze curling --seeds 0 1 2 --budget 100000 --out runs/compare --compile

The seeds of one algorithm on one env run in lockstep (``qd run ALGO --seeds ...``: one
evaluator call per round for all seeds) in ``OUT/ENV/ALGO/``, with seed S in
``OUT/ENV/ALGO/seed-S`` (identical to a separate run with that seed). Interrupted? Run the same
command again: finished groups are skipped and unfinished ones resume from their last
checkpoints. ``--jobs N`` runs N groups at once in separate processes, one torch thread each
(SERENE and CMA-ES, the slowest, first).
At the end it writes ``OUT/results.json``, ``OUT/results.md`` (one row per env x algorithm: max
reward per area, coverage, wall time, means over the seeds with the per-seed values in the
JSON) and ``OUT/ENV.png`` (reward per area and coverage curves, see ``compare_runs.py``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_runs import plot, summarise  # noqa: E402

from qd.run import RunConfig, parse_overrides, resume, start  # noqa: E402
from qd.run_folder import is_lockstep, read_metrics, seed_folder  # noqa: E402


def finished(folder: Path, budget: int) -> bool:
    """True when the run in ``folder`` spent its budget and wrote its archives."""
    if not (folder / "archive").is_dir():
        return False
    metrics = read_metrics(folder)
    return bool(metrics) and metrics[-1]["evaluations"] == budget


def run_one(folder: Path, config: RunConfig, seeds: list[int]) -> str:
    """Start, resume or skip the lockstep seeds of one algorithm; returns what was done."""
    if all(finished(seed_folder(folder, s), config.budget) for s in seeds):
        return "skipped (finished)"
    if is_lockstep(folder):
        resume(folder, progress=False)
        return "resumed"
    start(config, seeds=seeds, progress=False)
    return "ran"


def _run_in_worker(folder: Path, config: RunConfig, seeds: list[int]) -> str:
    """``run_one`` in a pool process, with one torch thread (the pool fills the cores)."""
    import torch

    torch.set_num_threads(1)
    return run_one(folder, config, seeds)


def run_all(jobs: list[tuple[Path, RunConfig]], seeds: list[int], workers: int) -> None:
    """Run every ``(folder, config)`` with ``seeds`` in lockstep, ``workers`` at a time (1: in
    this process, in order)."""
    label = {id(c): f"{c.env} {c.algorithm} seeds {seeds}" for _, c in jobs}
    if workers <= 1:
        for folder, config in jobs:
            print(f"{label[id(config)]}: {run_one(folder, config, seeds)}", flush=True)
        return
    # slowest first: SERENE's and CMA-ES's small batches (12, 4 + 3 ln D) cost most per evaluation
    order = sorted(jobs, key=lambda job: job[1].algorithm not in ("serene", "cma-es"))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [(config, pool.submit(_run_in_worker, f, config, seeds)) for f, config in order]
        for config, future in futures:
            print(f"{label[id(config)]}: {future.result()}", flush=True)


def table_markdown(results: dict[str, dict[str, dict]], budget: int, seeds: list[int]) -> str:
    """One Markdown table per env."""
    lines = [f"Budget {budget:,} evaluations, seeds {seeds}; means over the seeds.", ""]
    for env, rows in results.items():
        areas = max(len(r["max_reward_mean"]) for r in rows.values())
        head = " | ".join(f"max reward area {a}" for a in range(areas))
        lines += [f"### {env}", "", f"| algorithm | {head} | coverage | wall time (s) |"]
        lines.append("| --- " * (areas + 3) + "|")
        for algo, r in rows.items():
            rewards = " | ".join(f"{v:.3f}" for v in r["max_reward_mean"])
            coverage = float(np.mean(r["coverage"]))
            wall = float(np.mean(r["wall_time_s"]))
            lines.append(f"| {algo} | {rewards} | {coverage:.3f} | {wall:.0f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithms", nargs="+", required=True)
    parser.add_argument("--envs", nargs="+", required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budget", type=int, required=True)
    parser.add_argument("--out", default="runs/compare")
    parser.add_argument("--compile", action="store_true", help="torch.compile the rollouts")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--jobs", type=int, default=1, help="runs at once, each in its own process (default 1)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="run setting for every run (e.g. checkpoint_every=5000, env.episode_length=100)",
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    results: dict[str, dict[str, dict]] = {}
    groups: dict[str, dict[str, list[Path]]] = {}
    jobs = []
    for env in args.envs:
        groups[env] = {}
        for algo in args.algorithms:
            folder = out / env / algo
            config = RunConfig(
                algorithm=algo,
                env=env,
                out=str(folder),
                budget=args.budget,
                device=args.device,
                compile=args.compile,
            )
            jobs.append((folder, parse_overrides(config, args.set)))
            groups[env][algo] = [seed_folder(folder, s) for s in args.seeds]
    run_all(jobs, args.seeds, args.jobs)
    for env in args.envs:
        results[env] = summarise(groups[env])
        plot(groups[env], out / env)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(table_markdown(results, args.budget, args.seeds))
    print((out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
