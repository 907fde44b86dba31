"""A custom batched environment and a custom behaviour space, searched with Novelty Search.

The environment is a point mass in a box ([-1, 1]^2) pushed by two accelerations, with one goal
corner. The behaviour space describes an episode by the mean of its path (instead of its final
position), using the evaluator's ``path`` recording. Both plug into the same evaluator, archive
and algorithm as the built-in ones.

    python examples/custom_env_and_space.py --budget 6000 --out runs/custom-example
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import envs
from envs.base import EnvSpec
from qd import LocalEvaluator, SereneMLP
from qd.algorithms.ns import NoveltySearch, NSConfig
from qd.evaluation import Outcomes
from qd.metrics import Tracker
from qd.plotting import plot_descriptors


@dataclass
class PointState:
    pos: torch.Tensor  # [B, 2]
    vel: torch.Tensor  # [B, 2]
    t: torch.Tensor  # 0-dim step counter


class PointBox:
    """Point mass in [-1, 1]^2; reward (r - d) / r at the end inside the goal at (0.8, 0.8)."""

    goal = (0.8, 0.8, 0.2)

    def __init__(self, *, episode_length: int = 100) -> None:
        self.spec = EnvSpec(
            name="point-box",
            obs_size=4,
            action_size=2,
            episode_length=episode_length,
            descriptor_size=2,
            descriptor_low=(-1.0, -1.0),
            descriptor_high=(1.0, 1.0),
            grid_shape=(50, 50),
            reward_areas=1,
            options={"episode_length": episode_length},
        )

    def reset(self, batch_size, *, device="cpu", generator=None) -> PointState:
        zeros = torch.zeros(batch_size, 2, device=device)
        return PointState(zeros, zeros.clone(), torch.zeros((), dtype=torch.long, device=device))

    def step(self, state: PointState, actions: torch.Tensor) -> PointState:
        vel = (0.9 * state.vel + 0.01 * actions).clamp(-0.05, 0.05)
        pos = (state.pos + vel).clamp(-1.0, 1.0)
        return PointState(pos, vel, state.t + 1)

    def observe(self, state: PointState) -> torch.Tensor:
        return torch.cat([state.pos, state.vel * 20], 1)

    def _distance(self, state: PointState) -> torch.Tensor:
        goal = torch.tensor(self.goal[:2], device=state.pos.device)
        return torch.linalg.vector_norm(state.pos - goal, dim=1)

    def reward(self, state: PointState) -> torch.Tensor:
        r = self.goal[2]
        return ((r - self._distance(state)) / r).clamp(min=0)

    def reward_area(self, state: PointState) -> torch.Tensor:
        inside = self._distance(state) < self.goal[2]
        return torch.where(inside, 0, -1)

    def descriptor(self, state: PointState) -> torch.Tensor:
        return state.pos

    def done(self, state: PointState) -> torch.Tensor:
        return (state.t >= self.spec.episode_length).expand(state.pos.shape[0])

    def render(self, state: PointState) -> torch.Tensor:
        size = self.spec.image_size
        grid = (torch.arange(size, device=state.pos.device) + 0.5) / size * 2 - 1
        d2 = (grid[None, None, :] - state.pos[:, 0, None, None]) ** 2 + (
            grid[None, :, None] - state.pos[:, 1, None, None]
        ) ** 2
        img = torch.full(
            (state.pos.shape[0], size, size, 3), 255, dtype=torch.uint8, device=state.pos.device
        )
        img[d2 < 0.003] = torch.tensor([200, 30, 30], dtype=torch.uint8, device=img.device)
        return img

    def background(self) -> np.ndarray:
        return np.full((64, 64, 3), 240, dtype=np.uint8)

    def goal_circles(self):
        return [self.goal]


@dataclass(frozen=True)
class MeanPathSpace:
    """Behaviour = mean position over 20 equally spaced points of the episode."""

    dim: int = 2
    name = "mean_path"

    @property
    def recordings(self) -> dict:
        return {"path": 20}

    def describe(self, outcomes: Outcomes) -> torch.Tensor:
        return outcomes.path.mean(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/custom-example")
    args = parser.parse_args()

    envs.register("point-box", lambda **options: PointBox(**options))
    env = envs.make("point-box")
    policy = SereneMLP((4, 5, 5, 2))
    evaluator = LocalEvaluator(env, policy, seed=args.seed)
    space = MeanPathSpace()
    search = NoveltySearch(
        NSConfig(),
        genome_size=policy.genome_size,
        measure_dim=space.dim,
        env_spec=env.spec.to_dict(),
        seed=args.seed,
    )
    tracker = Tracker(env.spec.to_dict())
    while tracker.evaluations < args.budget:
        genomes = search.ask(args.budget - tracker.evaluations)
        outcomes = evaluator.evaluate(genomes, **space.recordings)
        search.tell(genomes, outcomes, space.describe(outcomes))
        tracker.update(outcomes.descriptor, outcomes.fitness, outcomes.reward_area)
    data = search.archive.data(["ground_truth", "objective"])
    path = plot_descriptors(
        env,
        data["ground_truth"],
        Path(args.out) / "archive.png",
        colours=data["objective"],
        colour_label="reward",
        title="NS with a mean-path behaviour space: final positions",
    )
    print(
        f"coverage of final positions {tracker.coverage:.3f}, best reward "
        f"{tracker.max_reward.tolist()}, archive {len(search.archive)}; wrote {path}"
    )


if __name__ == "__main__":
    main()
