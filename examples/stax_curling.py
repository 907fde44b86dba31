"""STAX on Curling through the run API (what `qd run stax --env curling` does).

    python examples/stax_curling.py --budget 20000 --compile --out runs/stax-curling-example
    python examples/stax_curling.py --variant stax-p     # or stax-nt

SERENE's emitters and meta-scheduler working in the behaviour space that TAXONS's autoencoder
learns from the final frame (table, ball and arm). ``--compile`` makes the 12-episode emitter
generations several times faster on the CPU. ``qd inspect RUN`` then shows the reward archive
per goal; ``plots/reward.png`` the best reward per goal over the run.
"""

from __future__ import annotations

import argparse

from qd.report import format_summary, summary
from qd.run import RunConfig, start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", default="stax", choices=["stax", "stax-p", "stax-nt"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the rollouts")
    parser.add_argument("--ae-device", default=None, help="where the autoencoder trains")
    parser.add_argument("--out", default="runs/stax-curling-example")
    args = parser.parse_args()
    settings = {"ae_device": args.ae_device} if args.ae_device else {}
    config = RunConfig(
        algorithm=args.variant,
        env="curling",
        out=args.out,
        budget=args.budget,
        seed=args.seed,
        compile=args.compile,
        algorithm_config=settings,
    )
    folder = start(config)
    print(format_summary(summary(folder)))


if __name__ == "__main__":
    main()
