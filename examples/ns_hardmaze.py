"""Novelty Search on HardMaze through the library API (what `qd run ns` does, by hand).

python examples/ns_hardmaze.py --budget 20000 --out runs/ns-hardmaze-example
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import envs
from qd import LocalEvaluator, SereneMLP
from qd.algorithms.ns import NoveltySearch, NSConfig
from qd.metrics import Tracker
from qd.plotting import plot_descriptors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=20_000, help="evaluations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="runs/ns-hardmaze-example")
    args = parser.parse_args()

    env = envs.make("hardmaze")
    spec = env.spec.to_dict()
    policy = SereneMLP((5, 5, 5, 2))
    evaluator = LocalEvaluator(env, policy, device=args.device, seed=args.seed)
    search = NoveltySearch(
        NSConfig(),
        genome_size=policy.genome_size,
        measure_dim=2,
        env_spec=spec,
        device=args.device,
        seed=args.seed,
    )
    tracker = Tracker(spec)
    while tracker.evaluations < args.budget:
        genomes = search.ask(args.budget - tracker.evaluations)
        outcomes = evaluator.evaluate(genomes)
        search.tell(genomes, outcomes, outcomes.descriptor)  # ground-truth behaviour space
        tracker.update(outcomes.descriptor, outcomes.fitness, outcomes.reward_area)
        if search.generation % 20 == 0:
            print(
                f"{tracker.evaluations:>7} evaluations  coverage {tracker.coverage:.3f}  "
                f"archive {len(search.archive)}  max reward {tracker.max_reward.tolist()}"
            )

    out = Path(args.out)
    search.archive.save(out / "novelty.safetensors")
    data = search.archive.data(["ground_truth", "objective"])
    plot_descriptors(
        env,
        data["ground_truth"],
        out / "archive.png",
        colours=data["objective"],
        colour_label="reward",
        title="NS archive on HardMaze",
    )
    print(f"coverage {tracker.coverage:.3f}; wrote {out}/novelty.safetensors and archive.png")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
