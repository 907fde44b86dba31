"""``qd``: the command-line interface (run ``qd --help``)."""

from __future__ import annotations

import argparse
import json
import sys

EPILOG_BENCH = """example:
  qd bench rollout --env hardmaze --batch 1 256 1024 4096 --json
  (ratios are against the first batch size, measured in the same process)"""


def _cmd_envs(args: argparse.Namespace) -> int:
    import envs

    rows = []
    for name in envs.names():
        spec = envs.make(name).spec
        rows.append(spec.to_dict())
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':<16}{'obs':>5}{'act':>5}{'steps':>7}{'desc':>6}{'areas':>7}  grid")
    for r in rows:
        grid = "x".join(str(g) for g in r["grid_shape"])
        print(
            f"{r['name']:<16}{r['obs_size']:>5}{r['action_size']:>5}{r['episode_length']:>7}"
            f"{r['descriptor_size']:>6}{r['reward_areas']:>7}  {grid}"
        )
    return 0


def _cmd_bench_rollout(args: argparse.Namespace) -> int:
    import torch

    from qd.bench import rollout_throughput

    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    for batch in args.batch:
        r = rollout_throughput(
            args.env, batch, steps=args.steps, device=args.device, episodes=args.episodes
        )
        r["ratio_vs_first"] = r["policy_steps_per_s"] / (
            results[0]["policy_steps_per_s"] if results else r["policy_steps_per_s"]
        )
        results.append(r)
        if not args.json:
            print(
                f"{r['env']} {r['device']} B={batch:>6} T={r['steps']}: "
                f"{r['policy_steps_per_s'] / 1e6:8.3f} M policy-steps/s  "
                f"x{r['ratio_vs_first']:.1f} vs B={args.batch[0]}  "
                f"peak {r['peak_memory_mb']:.0f} MB  ({r['wall_s']:.2f} s)",
                flush=True,
            )
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qd",
        description="qdtorch: quality-diversity search with batched torch rollouts.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("envs", help="list the environments and their sizes")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_envs)

    bench = sub.add_parser("bench", help="throughput benchmarks")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    p = bench_sub.add_parser(
        "rollout",
        help="policy-steps per second of full episodes",
        epilog=EPILOG_BENCH,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--env", default="hardmaze", help="environment name (see `qd envs`)")
    p.add_argument("--batch", type=int, nargs="+", default=[1024], help="batch size(s)")
    p.add_argument("--steps", type=int, default=None, help="episode length (default: env's)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    p.add_argument("--episodes", type=int, default=1, help="timed episodes per batch size")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_bench_rollout)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``qd`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (KeyError, ValueError, TypeError, FileNotFoundError, FileExistsError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"qd: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
