"""Argument parsers of the ``qd`` commands that read run folders (``inspect``, ``plot``,
``replay``, ``export``, ``compare``, ``evolvability``; their handlers are in
:mod:`qd.cli_inspect` and :mod:`qd.cli_tools`), and the helpers every subcommand parser uses.

Nothing here imports torch, so ``qd --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib


def add_import(parser: argparse.ArgumentParser, what: str) -> None:
    """Add the repeatable ``--import MODULE`` option; ``what`` ends its help text."""
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help=f"import MODULE first (repeatable): a module that registers your environments; {what}",
    )


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


def lazy(module: str, name: str):
    """A command handler imported on first use (so ``qd --help`` imports no torch)."""

    def handler(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module), name)(args)

    return handler


def subcommand(sub, name: str, help_text: str, epilog: str, func):
    """A subcommand parser of ``sub`` with ``help_text``, ``epilog`` and handler ``func``."""
    parser = sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=func)
    return parser


def add_read_parsers(sub) -> None:
    """Add the parsers of the commands that read run folders to the subparsers ``sub``."""
    p = subcommand(
        sub,
        "inspect",
        "summary of a run folder or archive file; top individuals",
        EPILOG_INSPECT,
        lazy("qd.cli_inspect", "cmd_inspect"),
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

    p = subcommand(
        sub, "plot", "PNG figures of a run", EPILOG_PLOT, lazy("qd.cli_tools", "cmd_plot")
    )
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
    add_import(p, READ_IMPORT)

    p = subcommand(
        sub,
        "replay",
        "re-evaluate a stored individual and draw its trajectory",
        EPILOG_REPLAY,
        lazy("qd.cli_tools", "cmd_replay"),
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
    add_import(p, READ_IMPORT)

    p = subcommand(
        sub,
        "export",
        "archive rows as CSV or parquet; a run's metrics and archives as TensorBoard events",
        EPILOG_EXPORT,
        lazy("qd.cli_tools", "cmd_export"),
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
    add_import(p, READ_IMPORT)

    p = subcommand(
        sub,
        "compare",
        "curves of several runs on one figure (mean and spread)",
        EPILOG_COMPARE,
        lazy("qd.cli_tools", "cmd_compare"),
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

    p = subcommand(
        sub,
        "evolvability",
        "evolvability of stored genomes (1,000 mutants each)",
        EPILOG_EVOLVABILITY,
        lazy("qd.cli_tools", "cmd_evolvability"),
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
    add_import(p, READ_IMPORT)
