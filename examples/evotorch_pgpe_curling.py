"""EvoTorch's PGPE on Curling, two ways.

    python examples/evotorch_pgpe_curling.py --budget 50000 --out runs/pgpe-curling
    python examples/evotorch_pgpe_curling.py --loop --generations 20

The default is a qdtorch run (what ``qd run evotorch:PGPE --env curling`` does): run folder,
metrics.jsonl, the ``elites`` grid of everything evaluated, checkpoints, ``qd inspect`` /
``qd plot``. ``--loop`` uses EvoTorch's own loop on :class:`qd.integrations.evotorch.EnvProblem`
(any registered env; evaluation by qdtorch's batched evaluator). Curling's reward is sparse
(random genomes score 0), so reward-only searchers often see no reward at small budgets; see
docs/integrations/evotorch.md.
"""

from __future__ import annotations

import argparse

from qd.report import format_summary, summary
from qd.run import RunConfig, start


def run(args: argparse.Namespace) -> None:
    config = RunConfig(
        algorithm="evotorch:PGPE",
        env="curling",
        out=args.out,
        budget=args.budget,
        seed=args.seed,
        env_options={"episode_length": args.episode_length},
        algorithm_config={"popsize": args.popsize, "stdev_init": args.stdev_init},
    )
    folder = start(config)
    print(format_summary(summary(folder)))


def loop(args: argparse.Namespace) -> None:
    from evotorch.algorithms import PGPE

    from qd.integrations.evotorch import EnvProblem

    problem = EnvProblem(
        "curling", seed=args.seed, env_options={"episode_length": args.episode_length}
    )
    searcher = PGPE(
        problem,
        popsize=args.popsize,
        center_learning_rate=0.1,
        stdev_learning_rate=0.1,
        stdev_init=args.stdev_init,
    )
    best = float("-inf")
    for generation in range(args.generations):
        searcher.step()
        best = max(best, float(problem.last_outcomes.fitness.max()))
        print(
            f"generation {generation + 1}: mean return {searcher.status['mean_eval']:.3f}, "
            f"best so far {best:.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--popsize", type=int, default=200)
    parser.add_argument("--stdev-init", type=float, default=0.5)
    parser.add_argument("--episode-length", type=int, default=500)
    parser.add_argument("--out", default="runs/pgpe-curling-example")
    parser.add_argument("--loop", action="store_true", help="EvoTorch's own loop instead")
    parser.add_argument("--generations", type=int, default=20, help="with --loop")
    args = parser.parse_args()
    if args.loop:
        loop(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
