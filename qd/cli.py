"""``qd``: the command-line interface (run ``qd --help``)."""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import time

from qd.cli_bench import add_bench_parser


def _add_import(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help=f"import MODULE first (repeatable): a module that registers your environments; {what}",
    )


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
  qd run ns --import my_pkg.envs --env my-env   (a module that calls envs.register)
  qd run ns --env 'gym:my_pkg:MyEnv-v0' --set 'env.descriptor=info[x_position,y_position]'
      --set 'env.descriptor_bounds=[[-5,-5],[5,5]]'   (docs/gymnasium.md)

--set keys: any field of the algorithm's config (e.g. pop_size, sigma, k_neighbors,
archive_rule, archive_add, space), env.<option> for the environment, space.<option> for your
own behaviour space, or the run settings checkpoint_every, keep_checkpoints, max_batch,
log_every. The run folder's config.json records the env, space and --import modules;
--resume imports them again."""

READ_IMPORT = (
    "the only modules this command imports (a run of your own env needs the module that "
    "provides it; curves from metrics.jsonl need none)"
)

EPILOG_INSPECT = """examples:
  qd inspect runs/demo
  qd inspect runs/demo --json
  qd inspect runs/demo --top 10 --by objective   (from the archive holding the best)
  qd inspect runs/demo --top 5 --by 'ground_truth[0]' --archive novelty
  qd inspect runs/demo/archive/novelty.safetensors"""

EPILOG_PLOT = """examples:
  qd plot runs/demo --kind coverage
  qd plot runs/demo --kind heatmap --value count --out heat.png
  qd plot runs/demo --kind descriptors"""

EPILOG_REPLAY = """examples:
  qd replay runs/demo --best --area 1
  qd replay runs/demo --index 42 --gif
exit status 1 when the replayed outcome differs from the stored one."""

EPILOG_EXPORT = """examples:
  qd export runs/demo --format csv --out archive.csv
  qd export runs/demo --format parquet --archive population
  qd export runs/demo --format tensorboard --out tb/demo   (then: tensorboard --logdir tb)"""

EPILOG_COMPARE = """examples:
  qd compare runs/ns-s0 runs/ns-s1 runs/ns-s2 --metric coverage --out ns.png"""

EPILOG_EVOLVABILITY = """examples:
  qd evolvability runs/demo --index 0
  qd evolvability runs/demo --sample 10 --json"""


def _lazy(module: str, name: str):
    """A command handler imported on first use (so ``qd --help`` imports no torch)."""

    def handler(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module), name)(args)

    return handler


def _sub(sub, name: str, help_text: str, epilog: str, func):
    parser = sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=func)
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    from qd.run import RunConfig, load_config_file, parse_overrides, parse_seeds, resume, start

    if args.resume:
        if (
            args.algorithm
            or args.set
            or args.config
            or args.seeds
            or args.seed is not None
            or (args.tensorboard)
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
            "tensorboard",
        ):
            value = getattr(args, key)
            if value is not None:
                base[key] = value
        if "out" not in base:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            which = f"s{base.get('seed', 0)}" if seeds is None else f"seeds{len(seeds)}"
            env = re.sub(r"[^\w.-]+", "_", args.env)  # gym:ns/Id-v0, module:callable
            base["out"] = f"runs/{args.algorithm}-{env}-{which}-{stamp}"
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

    p = _sub(
        sub,
        "envs",
        "list the environments and their sizes",
        "examples:\n  qd envs\n  qd envs --json",
        _cmd_envs,
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_import(p, "its environments are listed too")

    from qd.catalog import ALGORITHM_NAMES

    p = sub.add_parser(
        "run",
        help="run an algorithm (or resume a run)",
        description="Run a QD algorithm on an environment; writes a run folder with config.json, "
        "metrics.jsonl, checkpoints/, archive/ and plots/.",
        epilog=EPILOG_RUN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("algorithm", nargs="?", help=f"one of: {', '.join(ALGORITHM_NAMES)}")
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
        help="run episodes in torch.compile'd blocks of 8 steps, bit-identical to eager "
        "(1.3-2x faster on a CPU, after a one-off compile of tens of seconds). Default: auto, "
        "compiled on the CPU for the built-in envs once the budget holds 1e8 policy-steps "
        "(results are the same either way)",
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
    _add_import(p, "recorded in config.json and imported again by --resume")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: only on a terminal; otherwise log lines)",
    )
    p.set_defaults(func=_cmd_run)

    p = _sub(
        sub,
        "inspect",
        "summary of a run folder or archive file; top individuals",
        EPILOG_INSPECT,
        _lazy("qd.cli_inspect", "cmd_inspect"),
    )
    p.add_argument("run", help="run folder or archive file (.safetensors)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--top",
        type=int,
        help="list the N best individuals (default archive: the one holding the best value)",
    )
    p.add_argument(
        "--by",
        default="objective",
        help="field to rank by for --top (objective, reward_area, novelty, or a component of a "
        "vector field such as ground_truth[0])",
    )
    p.add_argument(
        "--archive",
        help="archive of the run (default: its main one, novelty or elites; for --top the one "
        "holding the best; champions holds the best of each reward area)",
    )

    p = _sub(sub, "plot", "PNG figures of a run", EPILOG_PLOT, _lazy("qd.cli_tools", "cmd_plot"))
    p.add_argument("run", help="run folder")
    p.add_argument(
        "--kind",
        default="coverage",
        choices=["coverage", "reward", "descriptors", "heatmap", "novelty", "lambda"],
    )
    p.add_argument(
        "--value",
        default="reward",
        choices=["reward", "count"],
        help="heatmap cell value: best reward or number of individuals",
    )
    p.add_argument("--archive", help="archive for descriptors/heatmap (default: the main one)")
    p.add_argument("--out", help="PNG path (default ./RUN-KIND.png; never inside the run)")
    _add_import(p, READ_IMPORT)

    p = _sub(
        sub,
        "replay",
        "re-evaluate a stored individual and draw its trajectory",
        EPILOG_REPLAY,
        _lazy("qd.cli_tools", "cmd_replay"),
    )
    p.add_argument("run", help="run folder or archive file")
    p.add_argument("--index", type=int, help="row of the archive")
    p.add_argument("--best", action="store_true", help="the row with the best objective")
    p.add_argument("--area", type=int, help="with --best: only rows in this reward area")
    p.add_argument(
        "--archive", help="archive of the run (default: its main one, novelty or elites)"
    )
    p.add_argument("--gif", action="store_true", help="also write an animated GIF of renders")
    p.add_argument("--frames", type=int, default=50, help="frames of the GIF")
    p.add_argument("--device", default="cpu", help="cpu, cuda")
    p.add_argument("--out", help="PNG path (default ./RUN-replay-I.png)")
    _add_import(p, READ_IMPORT)

    p = _sub(
        sub,
        "export",
        "archive rows as CSV or parquet; a run's metrics and archives as TensorBoard events",
        EPILOG_EXPORT,
        _lazy("qd.cli_tools", "cmd_export"),
    )
    p.add_argument("run", help="run folder or archive file")
    p.add_argument("--format", default="csv", choices=["csv", "parquet", "tensorboard"])
    p.add_argument(
        "--archive", help="archive of the run (default: its main one, novelty or elites)"
    )
    p.add_argument(
        "--out",
        help="output file (default ./RUN-ARCHIVE.FORMAT); tensorboard: a new folder (default "
        "./RUN-tensorboard)",
    )
    _add_import(p, READ_IMPORT)

    p = _sub(
        sub,
        "compare",
        "curves of several runs on one figure (mean and spread)",
        EPILOG_COMPARE,
        _lazy("qd.cli_tools", "cmd_compare"),
    )
    p.add_argument("runs", nargs="+", help="run folders (seeds of one setting are grouped)")
    p.add_argument(
        "--metric",
        default="coverage",
        help="coverage, coverage_archive, uniformity, archive_size, qd_score, max_reward, or any "
        "other metrics.jsonl key (e.g. population_reward_max for DvD); runs with the same "
        "algorithm, env and settings are grouped",
    )
    p.add_argument("--out", help="PNG path (default ./compare-METRIC.png)")

    p = _sub(
        sub,
        "evolvability",
        "evolvability of stored genomes (1,000 mutants each)",
        EPILOG_EVOLVABILITY,
        _lazy("qd.cli_tools", "cmd_evolvability"),
    )
    p.add_argument("run", help="run folder or archive file")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--index", type=int, help="row of the archive")
    group.add_argument("--sample", type=int, help="N random rows")
    p.add_argument("--mutants", type=int, default=1000, help="mutants per genome")
    p.add_argument(
        "--archive", help="archive of the run (default: its main one, novelty or elites)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_import(p, READ_IMPORT)

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
