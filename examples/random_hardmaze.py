"""Evaluate a batch of random SERENE policies on HardMaze and plot their final positions.

python examples/random_hardmaze.py --count 1000 --out runs/random-hardmaze
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import envs
from qd import LocalEvaluator, SereneMLP
from qd.plotting import plot_descriptors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="number of random policies")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/random-hardmaze", help="output folder")
    args = parser.parse_args()

    env = envs.make("hardmaze")
    policy = SereneMLP((5, 5, 5, 2))
    gen = torch.Generator().manual_seed(args.seed)
    genomes = torch.randn(args.count, policy.genome_size, generator=gen).clamp(-5, 5)
    outcomes = LocalEvaluator(env, policy).evaluate(genomes)
    path = plot_descriptors(
        env,
        outcomes.descriptor.numpy(),
        Path(args.out) / "final_positions.png",
        colours=outcomes.fitness.numpy(),
        colour_label="reward",
    )
    reached = int((outcomes.reward_area >= 0).sum())
    print(f"{args.count} random policies, {reached} ended in a goal area; wrote {path}")


if __name__ == "__main__":
    main()
