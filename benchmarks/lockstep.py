"""Lockstep seeds against the same seeds run one after the other, in one process.

Usage (run by hand, not in CI)::

    python benchmarks/lockstep.py --algorithm ns --env hardmaze --seeds 0-9 --budget 20000
    python benchmarks/lockstep.py --algorithm serene --env hardmaze --seeds 0-9 --budget 20000 \
        --sequential 3     # time 3 of the seeds one by one and scale to all of them

Both ways go through ``qd.run.start`` (lockstep: ``seeds=[...]``; sequential: one ``start`` per
seed) with the same torch thread count. ``--sequential K`` runs only the first K seeds one by one
and scales their time to all seeds (the seeds cost about the same), to keep the script short.
Reports evaluations/s, policy-steps/s, the share of wall time outside rollouts (setup, search,
metrics, checkpoints and plots included), peak memory
(max resident set size of the process), and the speed-up of lockstep; ``--json`` prints JSON.
Say whether the machine was idle when you quote the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

import envs
from qd.run import RunConfig, parse_overrides, parse_seeds, start
from qd.run_folder import read_metrics, seed_folder


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rollout_share(folders: list[Path]) -> tuple[float, float]:
    """Summed rollout time and wall time of the runs in ``folders`` (their last metrics)."""
    lines = [read_metrics(folder)[-1] for folder in folders]
    return sum(x["rollout_time_s"] for x in lines), sum(x["wall_time_s"] for x in lines)


def measure(config: RunConfig, seeds: list[int], sequential: int, out: Path) -> dict:
    """Time the lockstep run of ``seeds`` and ``sequential`` of them one by one."""
    steps = envs.make(config.env, **config.env_options).spec.episode_length
    lock_out = out / "lockstep"
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # log lines of the runs: keep stdout for JSON
        start(_with(config, out=str(lock_out)), seeds=seeds, progress=False)
    lock_s = time.perf_counter() - t0
    lock_rollout, _ = _rollout_share([seed_folder(lock_out, s) for s in seeds])
    lock_peak = _peak_mb()
    seq_s = seq_rollout = 0.0
    for seed in seeds[:sequential]:
        folder = out / f"seed-{seed}"
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):
            start(_with(config, out=str(folder), seed=seed), progress=False)
        seq_s += time.perf_counter() - t0
        seq_rollout += _rollout_share([folder])[0]
    seq_all = seq_s * len(seeds) / sequential
    evaluations = config.budget * len(seeds)
    return {
        "algorithm": config.algorithm,
        "env": config.env,
        "seeds": len(seeds),
        "budget_per_seed": config.budget,
        "episode_length": steps,
        "threads": torch.get_num_threads(),
        "compile": config.compile,
        "lockstep_s": lock_s,
        "lockstep_evals_per_s": evaluations / lock_s,
        "lockstep_policy_steps_per_s": evaluations * steps / lock_s,
        "lockstep_share_outside_rollouts": 1 - lock_rollout / lock_s,
        "lockstep_peak_rss_mb": lock_peak,
        "sequential_seeds_timed": sequential,
        "sequential_s_all_seeds": seq_all,
        "sequential_evals_per_s": evaluations / seq_all,
        "sequential_policy_steps_per_s": evaluations * steps / seq_all,
        "sequential_share_outside_rollouts": 1 - seq_rollout / seq_s,
        "speedup": seq_all / lock_s,
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
    }


COMPILE = {"off": False, "on": True, "fused": "fused", "auto": "auto"}


def _with(config: RunConfig, **changes) -> RunConfig:
    import dataclasses

    return dataclasses.replace(config, **changes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithm", default="ns")
    parser.add_argument("--env", default="hardmaze")
    parser.add_argument("--seeds", nargs="+", default=["0-9"])
    parser.add_argument("--budget", type=int, default=20_000, help="evaluations per seed")
    parser.add_argument(
        "--sequential", type=int, default=0, help="seeds timed one by one (default: all)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--compile",
        choices=list(COMPILE),
        default="off",
        help="rollouts of both ways: off (eager), on (compiled, bit-identical), fused, or auto "
        "(qd run's default: lockstep may compile where the single seeds do not)",
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", help="keep the run folders here (default: a temporary folder)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    seeds = parse_seeds(args.seeds)
    sequential = args.sequential or len(seeds)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="qd-lockstep-"))
    config = RunConfig(
        algorithm=args.algorithm,
        env=args.env,
        out=str(out),
        budget=args.budget,
        checkpoint_every=max(args.budget, 1),
        compile=COMPILE[args.compile],
    )
    config = parse_overrides(config, args.set)
    try:
        result = measure(config, seeds, min(sequential, len(seeds)), out)
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        r = result
        print(
            f"{r['algorithm']} on {r['env']}, {r['seeds']} seeds x {r['budget_per_seed']} "
            f"evaluations, {r['threads']} torch thread(s), load {r['load_average_1min']:.1f}\n"
            f"  lockstep:   {r['lockstep_s']:8.1f} s  {r['lockstep_evals_per_s']:8.0f} evals/s  "
            f"{r['lockstep_policy_steps_per_s'] / 1e6:6.2f} M policy-steps/s  "
            f"outside rollouts {100 * r['lockstep_share_outside_rollouts']:.1f}%  "
            f"peak RSS {r['lockstep_peak_rss_mb']:.0f} MB\n"
            f"  sequential: {r['sequential_s_all_seeds']:8.1f} s  "
            f"{r['sequential_evals_per_s']:8.0f} evals/s  "
            f"{r['sequential_policy_steps_per_s'] / 1e6:6.2f} M policy-steps/s  "
            f"outside rollouts {100 * r['sequential_share_outside_rollouts']:.1f}%"
            f"  ({r['sequential_seeds_timed']} seed(s) timed, scaled)\n"
            f"  speed-up x{r['speedup']:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
