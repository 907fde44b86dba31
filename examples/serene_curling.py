"""SERENE on Curling through the run API (what `qd run serene --env curling` does).

    python examples/serene_curling.py --budget 20000 --out runs/serene-curling-example
    python examples/serene_curling.py --emitter cma --compile

``--compile`` (torch.compile of the rollout step) makes the 12-episode emitter generations
several times faster on the CPU; see docs/algorithms/serene.md.
"""

from __future__ import annotations

import argparse

from qd.report import format_summary, summary
from qd.run import RunConfig, start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--scheduler", default="alternating", choices=["alternating", "fixed", "time", "ucb"]
    )
    parser.add_argument(
        "--emitter", default="elitist", choices=["elitist", "novelty", "cma", "pgpe"]
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the rollouts")
    parser.add_argument("--out", default="runs/serene-curling-example")
    args = parser.parse_args()
    config = RunConfig(
        algorithm="serene",
        env="curling",
        out=args.out,
        budget=args.budget,
        seed=args.seed,
        compile=args.compile,
        algorithm_config={"scheduler": args.scheduler, "emitter_type": args.emitter},
    )
    folder = start(config)
    print(format_summary(summary(folder)))


if __name__ == "__main__":
    main()
