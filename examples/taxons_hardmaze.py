"""TAXONS on HardMaze through the run API (what `qd run taxons --env hardmaze` does).

    python examples/taxons_hardmaze.py --budget 20000 --out runs/taxons-hardmaze-example
    python examples/taxons_hardmaze.py --variant taxo-n      # or taxo-s, nt, taxons-p
    python examples/taxons_hardmaze.py --ae-device cuda      # rollouts on the CPU, AE on a GPU

The search never sees the robot's position: it describes each policy by the autoencoder's
latent code of the final 64 x 64 frame. The run's plots show the ground-truth coverage (for
evaluation only) and ``plots/learned_space.png``, the archive's learned descriptors projected
to 2-D and coloured by where the robot ended. On a CPU most of the time goes into training the
autoencoder (see docs/algorithms/taxons.md).
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
        "--variant", default="taxons", choices=["taxons", "taxo-n", "taxo-s", "nt", "taxons-p"]
    )
    parser.add_argument("--frames", type=int, default=1, help="frames per episode (multi-frame)")
    parser.add_argument("--ae-device", default=None, help="where the autoencoder trains")
    parser.add_argument("--out", default="runs/taxons-hardmaze-example")
    args = parser.parse_args()
    settings = {"space": f"autoencoder:frames={args.frames}"}
    if args.ae_device:
        settings["ae_device"] = args.ae_device
    config = RunConfig(
        algorithm=args.variant,
        env="hardmaze",
        out=args.out,
        budget=args.budget,
        seed=args.seed,
        algorithm_config=settings,
    )
    folder = start(config)
    print(format_summary(summary(folder)))
    print(f"plots: {folder}/plots (coverage.png, learned_space.png, surprise.png, ae_loss.png)")


if __name__ == "__main__":
    main()
