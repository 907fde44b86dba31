"""``qd``: the command-line interface (run ``qd --help``)."""

from __future__ import annotations

import argparse
import json
import sys
import time

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


EPILOG_RUN = """examples:
  qd run ns --env hardmaze --budget 20000 --seed 0 --out runs/ns-demo
  qd run ns --env hardmaze --set archive_rule=top_novelty --set env.action_scale=5
  qd run --resume runs/ns-demo        (continue from the last checkpoint)

--set keys: any field of the algorithm's config (e.g. pop_size, sigma, k_neighbors,
archive_rule, archive_add, space), env.<option> for the environment, or the run settings
checkpoint_every, keep_checkpoints, max_batch, log_every."""

EPILOG_INSPECT = """examples:
  qd inspect runs/ns-demo
  qd inspect runs/ns-demo --json"""


def _cmd_run(args: argparse.Namespace) -> int:
    from qd.run import RunConfig, load_config_file, parse_overrides, resume, start

    if args.resume:
        if args.algorithm or args.set or args.config:
            raise ValueError("--resume takes only the run folder (its config.json is reused)")
        folder = resume(args.resume, progress=args.progress)
    else:
        if not args.algorithm or not args.env:
            raise ValueError("qd run needs ALGO and --env ENV (or --resume DIR)")
        base = load_config_file(args.config) if args.config else {}
        base.pop("run_format", None)
        base.pop("qdtorch_version", None)
        base.update(algorithm=args.algorithm, env=args.env)
        for key in ("budget", "seed", "device", "out"):
            value = getattr(args, key)
            if value is not None:
                base[key] = value
        if "out" not in base:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            base["out"] = f"runs/{args.algorithm}-{args.env}-s{base.get('seed', 0)}-{stamp}"
        config = parse_overrides(RunConfig(**base), args.set or [])
        folder = start(config, progress=args.progress)
    print(f"run folder: {folder}")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from qd.report import format_summary, summary

    info = summary(args.run)
    print(json.dumps(info, indent=2) if args.json else format_summary(info))
    return 0


def _cmd_bench_novelty(args: argparse.Namespace) -> int:
    from qd.bench import novelty_throughput

    results = [
        novelty_throughput(
            n_refs=args.refs, n_queries=args.queries, dim=d, k=args.k, device=args.device
        )
        for d in args.dim
    ]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        print(
            f"d={r['dim']:>3} {r['n_queries']} queries x {r['n_refs']} refs ({r['device']}): "
            f"ours {r['ours_s'] * 1e3:8.1f} ms | scikit-learn {r['sklearn_s'] * 1e3:8.1f} ms "
            f"(x{r['speedup_vs_sklearn']:.2f}) | pyribs ProximityArchive "
            f"{r['ribs_proximity_s'] * 1e3:8.1f} ms (x{r['speedup_vs_ribs']:.2f}) | "
            f"max |diff| {r['max_abs_diff_vs_sklearn']:.1e}"
        )
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

    from qd.algorithms import algorithm_names

    p = sub.add_parser(
        "run",
        help="run an algorithm (or resume a run)",
        description="Run a QD algorithm on an environment; writes a run folder with config.json, "
        "metrics.jsonl, checkpoints/, archive/ and plots/.",
        epilog=EPILOG_RUN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("algorithm", nargs="?", help=f"one of: {', '.join(algorithm_names())}")
    p.add_argument("--env", help="environment name (see `qd envs`)")
    p.add_argument("--budget", type=int, help="evaluations to spend (default 100000)")
    p.add_argument("--seed", type=int, help="seed (default 0)")
    p.add_argument("--device", help="cpu (default), cuda, cuda:N")
    p.add_argument("--out", help="run folder (default runs/ALGO-ENV-sSEED-TIME)")
    p.add_argument("--config", help="JSON file with run settings (keys of config.json)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: only on a terminal; otherwise log lines)",
    )
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "inspect",
        help="summary of a run folder",
        epilog=EPILOG_INSPECT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", help="run folder")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_inspect)

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

    p = bench_sub.add_parser(
        "novelty",
        help="exact k-NN novelty vs scikit-learn and pyribs on the same data",
        epilog="example:\n  qd bench novelty --dim 2 10 --refs 100000 --queries 4096",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dim", type=int, nargs="+", default=[2, 10], help="descriptor sizes")
    p.add_argument("--refs", type=int, default=100_000, help="stored descriptors")
    p.add_argument("--queries", type=int, default=4096, help="queries")
    p.add_argument("--k", type=int, default=15, help="neighbours")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_bench_novelty)
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
