"""Your own environment and behaviour space through the ``qd`` command line.

This file is the module the commands name: ``make_env`` builds the point-mass env of
``custom_env_and_space.py`` and ``MeanPathSpace`` is its behaviour space. The commands, as you
would type them with this folder on the import path (``PYTHONPATH=examples``)::

    qd run ns --env own_env_cli:make_env --set env.episode_length=50 \\
        --set space=custom_env_and_space:MeanPathSpace --budget 2000 --out runs/own-env \\
        --set checkpoint_every=1000
    qd run --resume runs/own-env                      # config.json says how to rebuild both
    qd plot runs/own-env --kind coverage              # metrics.jsonl only: imports nothing
    qd plot runs/own-env --kind descriptors --import own_env_cli   # needs the env: ask for it
    qd replay runs/own-env --best --import own_env_cli

Read commands import no module a run folder names unless ``--import`` asks for it; without
it, the descriptor plot stops with one line naming the option. Running this script does the
same in one process (budget 2000 by default; ``--budget 300`` for a quick check)::

    python examples/own_env_cli.py --budget 2000 --out runs/own-env
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # what PYTHONPATH=examples does for the qd command
    sys.path.insert(0, str(HERE))

from custom_env_and_space import PointBox  # noqa: E402  (after the path line above)


def make_env(*, episode_length: int = 100) -> PointBox:
    """The environment ``--env own_env_cli:make_env`` builds (options: ``env.KEY=VALUE``)."""
    return PointBox(episode_length=episode_length)


def qd(*argv: str, expect: int = 0) -> None:
    """Run one ``qd`` command in this process, printed as you would type it; stop unless it
    exits with ``expect``."""
    from qd.cli import main

    print("$ qd " + shlex.join(argv), flush=True)
    code = main(list(argv))
    if code != expect:
        raise SystemExit(f"qd {argv[0]} exited with {code}, expected {expect}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=2000)
    parser.add_argument("--out", default="runs/own-env")
    parser.add_argument("--plots", default=".", help="folder of the PNGs (outside the run)")
    args = parser.parse_args()
    out, plots = Path(args.out), Path(args.plots)
    shutil.rmtree(out, ignore_errors=True)
    plots.mkdir(parents=True, exist_ok=True)
    qd(
        "run", "ns", "--env", "own_env_cli:make_env", "--set", "env.episode_length=50",
        "--set", "space=custom_env_and_space:MeanPathSpace", "--budget", str(args.budget),
        "--set", f"checkpoint_every={max(1, args.budget // 2)}", "--out", str(out),
        "--no-progress",
    )  # fmt: skip
    # resume rebuilds env and space from config.json (here it redoes the part after the last
    # checkpoint, as after an interruption, and ends with the same archive)
    qd("run", "--resume", str(out), "--no-progress")
    qd("plot", str(out), "--kind", "coverage", "--out", str(plots / "coverage.png"))
    descriptors = str(plots / "descriptors.png")
    qd("plot", str(out), "--kind", "descriptors", "--out", descriptors, expect=2)
    print("(exit 2: the env's module was not imported)")
    qd("plot", str(out), "--kind", "descriptors", "--import", "own_env_cli", "--out", descriptors)
    qd("replay", str(out), "--best", "--import", "own_env_cli", "--out", str(plots / "best.png"))


if __name__ == "__main__":
    main()
