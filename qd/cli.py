"""``qd``: the command-line interface (run ``qd --help``)."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time

from qd.cli_bench import add_bench_parser
from qd.cli_parsers import add_import, add_read_parsers, subcommand


def _cmd_envs(args: argparse.Namespace) -> int:
    import envs

    envs.plugins.import_modules(args.imports)
    rows = []
    for name in envs.names():
        try:
            rows.append({**envs.make(name).spec.to_dict(), "name": name})
        except (ImportError, KeyError, TypeError, ValueError) as err:  # a broken plugin
            print(f"qd: {name}: cannot be built ({err})", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{'name':<16}{'obs':>5}{'act':>5}{'steps':>7}{'desc':>6}{'areas':>7}  {'grid':<9}"
        "lockstep seeds"
    )
    for r in rows:
        grid = "x".join(str(g) for g in r["grid_shape"])
        # every built-in env is batch invariant on the CPU (tests/test_lockstep.py); an env
        # whose reset draws from the seed is evaluated one seed at a time in lockstep runs
        lockstep = "one seed at a time (random reset)" if r["random_reset"] else "one batch"
        print(
            f"{r['name']:<16}{r['obs_size']:>5}{r['action_size']:>5}{r['episode_length']:>7}"
            f"{r['descriptor_size']:>6}{r['reward_areas']:>7}  {grid:<9}{lockstep}"
        )
    print(
        "\nBatch invariant on the CPU: an episode's outcome does not depend on the other "
        "episodes of its batch,\nso lockstep seeds (qd run ... --seeds 0-9) share one batch "
        "and each seed equals its separate run."
    )
    return 0


EPILOG_RUN = """examples:
  qd run ns --env hardmaze --budget 20000 --seed 0 --out runs/ns-demo
  qd run ns --env hardmaze --set archive_rule=top_novelty --set env.action_scale=5
  qd run taxons --env hardmaze --set ae_device=cuda   (learned space; AE on a GPU)
  qd run stax --env curling --compile --set space=autoencoder:frames=3
  qd run --resume runs/ns-demo        (continue from the last checkpoint)
  qd run --resume runs/ns-demo --budget 50000   (extend a run, finished or not)
  qd run ns --env hardmaze --seeds 0-9 --out runs/ns10   (10 seeds in lockstep; each seed's
      folder runs/ns10/seed-S equals a separate run with --seed S; resume with --resume runs/ns10)
  qd run ns --env hardmaze --evaluator ray --workers 4 [--address ray://head:10001]
  qd run ns --env my_pkg.envs:make_env --set env.size=3 --set space=my_pkg.spaces:MeanPath
      (your own env: a module:callable returning a batched env, options as env.KEY=VALUE;
      your own space: module:Class, options as space.KEY=VALUE; see examples/own_env_cli.py)
  qd run evotorch:PGPE --env curling --set popsize=100   (EvoTorch's searchers; docs/
      integrations/evotorch.md)
  qd run ns --import my_pkg.envs --env my-env   (a module that calls envs.register)
  qd run ns --env 'gym:my_pkg:MyEnv-v0' --set 'env.descriptor=info[x_position,y_position]'
      --set 'env.descriptor_bounds=[[-5,-5],[5,5]]'   (docs/gymnasium.md)

--set keys: any field of the algorithm's config (e.g. pop_size, sigma, k_neighbors,
archive_rule, archive_add, space), env.<option> for the environment, space.<option> for your
own behaviour space, or the run settings checkpoint_every, keep_checkpoints, max_batch,
log_every. The run folder's config.json records the env, space and --import modules;
--resume imports them again."""


def _cmd_run(args: argparse.Namespace) -> int:
    from qd.run import RunConfig, load_config_file, parse_overrides, parse_seeds, resume, start

    if args.resume:
        if (
            args.algorithm
            or args.set
            or args.config
            or args.seeds
            or args.seed is not None
            or args.tensorboard
        ):
            raise ValueError(
                "--resume takes only the run folder and --budget (its config.json, or "
                "lockstep.json with its seeds, is reused)"
            )
        import envs

        envs.plugins.import_modules(args.imports)
        args.run_folder = args.resume  # named on Ctrl-C or a failed write
        folder = resume(args.resume, budget=args.budget, progress=args.progress)
    else:
        if not args.algorithm or not args.env:
            raise ValueError("qd run needs ALGO and --env ENV (or --resume DIR)")
        if args.seeds is not None and args.seed is not None:
            raise ValueError("give --seed S (one run) or --seeds S1 S2 ... (lockstep), not both")
        seeds = parse_seeds(args.seeds) if args.seeds is not None else None
        base = load_config_file(args.config) if args.config else {}
        base.pop("run_format", None)
        base.pop("qdtorch_version", None)
        base.update(algorithm=args.algorithm, env=args.env)
        base["imports"] = [*base.get("imports", []), *args.imports]
        for key in (
            "budget",
            "seed",
            "device",
            "out",
            "evaluator",
            "workers",
            "address",
            "compile",
            "threads",
            "rollout_workers",
            "tensorboard",
        ):
            value = getattr(args, key)
            if value is not None:
                base[key] = value
        if "out" not in base:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            which = f"s{base.get('seed', 0)}" if seeds is None else f"seeds{len(seeds)}"
            env = re.sub(r"[^\w.-]+", "_", args.env)  # gym:ns/Id-v0, module:callable
            algo = re.sub(r"[^\w.-]+", "_", args.algorithm)  # evotorch:PGPE
            base["out"] = f"runs/{algo}-{env}-{which}-{stamp}"
        config = parse_overrides(RunConfig(**base), args.set or [])
        args.run_folder = config.out
        folder = start(config, seeds=seeds, progress=args.progress)
    print(f"run folder: {folder}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qd",
        description="qdtorch: quality-diversity search with batched torch rollouts.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = subcommand(
        sub,
        "envs",
        "list the environments and their sizes",
        "examples:\n  qd envs\n  qd envs --json",
        _cmd_envs,
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    add_import(p, "its environments are listed too")

    from qd.catalog import ALGORITHM_NAMES, EVOTORCH

    p = sub.add_parser(
        "run",
        help="run an algorithm (or resume a run)",
        description="Run a QD algorithm on an environment; writes a run folder with config.json, "
        "metrics.jsonl, checkpoints/, archive/ and plots/.",
        epilog=EPILOG_RUN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("algorithm", nargs="?", help=f"one of: {', '.join(ALGORITHM_NAMES)}, {EVOTORCH}")
    p.add_argument(
        "--env",
        help="environment: a name (see `qd envs`), package.module:callable (your own batched "
        "env), gym:<id> or gym:<module>:<id>",
    )
    p.add_argument(
        "--budget",
        type=int,
        help="evaluations to spend (default 100000); with --resume, the new total budget",
    )
    p.add_argument("--seed", type=int, help="seed (default 0)")
    p.add_argument(
        "--seeds",
        nargs="+",
        metavar="S",
        help="several seeds in lockstep, e.g. --seeds 0 1 2 or --seeds 0-9: independent "
        "searches evaluated in one batch per round, one run folder OUT/seed-S each",
    )
    p.add_argument("--device", help="cpu (default), cuda, cuda:N")
    p.add_argument("--out", help="run folder (default runs/ALGO-ENV-sSEED-TIME)")
    p.add_argument("--config", help="JSON file with run settings (keys of config.json)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting")
    p.add_argument("--evaluator", choices=["local", "ray"], help="where rollouts run (local)")
    p.add_argument(
        "--compile",
        action="store_const",
        const=True,
        default=None,
        help="run episodes in torch.compile'd blocks of 8 steps, bit-identical to eager on "
        "the CPU, close on CUDA (1.3-3x faster on a CPU, after a one-off compile of tens of "
        "seconds). Default: auto, compiled on the CPU for the built-in envs once the budget "
        "holds 1e8 policy-steps (results are the same either way)",
    )
    p.add_argument(
        "--no-compile",
        action="store_const",
        const=False,
        dest="compile",
        help="eager rollouts whatever the budget",
    )
    p.add_argument(
        "--compile-fused",
        action="store_const",
        const="fused",
        dest="compile",
        help="as --compile, with cos/tanh... fused too: faster, rounding differs from eager",
    )
    p.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: one per core). OpenMP threads sleep while they wait "
        "(OMP_WAIT_POLICY=PASSIVE unless set), so other busy processes do not stall them",
    )
    p.add_argument(
        "--rollout-workers",
        type=int,
        help="Python threads stepping parts of a large rollout batch at once on the CPU, one "
        "thread each (default 1; 2 on a 2-core machine: x1.9 at 4,096 episodes; same results)",
    )
    p.add_argument("--workers", type=int, help="Ray actors for --evaluator ray (default 2)")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    p.add_argument(
        "--tensorboard",
        action="store_const",
        const=True,
        default=None,
        help="also stream metrics (scalars) and archive heatmaps (at checkpoints) to "
        "TensorBoard event files in OUT/tensorboard; needs pip install 'qdtorch[tensorboard]'",
    )
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR")
    add_import(p, "recorded in config.json and imported again by --resume")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: only on a terminal; otherwise log lines)",
    )
    p.set_defaults(func=_cmd_run)

    add_read_parsers(sub)
    add_bench_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``qd`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from qd.cli_errors import interrupted, os_error

    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(interrupted(args), file=sys.stderr)
        return 130
    except (
        KeyError,
        ValueError,
        TypeError,
        ImportError,
        FileNotFoundError,
        FileExistsError,
    ) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"qd: error: {msg}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a read-only folder
        print(os_error(err, args), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
