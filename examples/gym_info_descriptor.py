"""A Gymnasium environment whose position is only in ``info``, searched with Novelty Search.

``InfoWalker-v0`` (defined and registered below) is a point pushed by two accelerations; its
observation holds only the velocity and the time, while ``info`` reports ``x_position`` and
``y_position`` (as MuJoCo's Ant and HalfCheetah do). The descriptor rule
``info[x_position,y_position]`` takes the final position from the last step's ``info``. The
command line, with this folder on the import path (``PYTHONPATH=examples``)::

    qd run ns --env gym:gym_info_descriptor:InfoWalker-v0 \\
        --set 'env.descriptor=info[x_position,y_position]' \\
        --set 'env.descriptor_bounds=[[-1,-1],[1,1]]' --set env.grid_cells=20 --budget 3000

(``gym:module:Id`` makes Gymnasium import ``module``, which registers ``Id``). With MuJoCo
installed, the same rule on Ant: ``--env gym:Ant-v5 --set 'env.descriptor=info[x_position,
y_position]' --set 'env.descriptor_bounds=[[-30,-30],[30,30]]'``. Guide: docs/gymnasium.md.

    python examples/gym_info_descriptor.py --budget 3000 --out runs/gym-info
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # what PYTHONPATH=examples does for the qd command
    sys.path.insert(0, str(HERE))


class InfoWalker(gym.Env):
    """Point in [-1, 1]^2 with inertia; observation (vx, vy, t / T), position in ``info``."""

    metadata = {"render_modes": []}
    observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), dtype=np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
    steps = 50

    def __init__(self) -> None:
        self.pos = np.zeros(2)
        self.vel = np.zeros(2)
        self.t = 0

    def _obs(self) -> np.ndarray:
        return np.array([*self.vel * 20, self.t / self.steps], dtype=np.float32)

    def _info(self) -> dict:
        return {"x_position": float(self.pos[0]), "y_position": float(self.pos[1])}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-0.05, 0.05, 2)
        self.vel = np.zeros(2)
        self.t = 0
        return self._obs(), self._info()

    def step(self, action):
        self.vel = np.clip(
            0.9 * self.vel + 0.01 * np.asarray(action, dtype=np.float64), -0.05, 0.05
        )
        self.pos = np.clip(self.pos + self.vel, -1.0, 1.0)
        self.t += 1
        reward = -float(np.linalg.norm(self.pos - np.array([0.8, 0.8])))
        return self._obs(), reward, False, False, self._info()


if "InfoWalker-v0" not in gym.registry:
    gym.register(
        "InfoWalker-v0",
        entry_point="gym_info_descriptor:InfoWalker",
        max_episode_steps=InfoWalker.steps,
    )


def main() -> None:
    from qd.cli import main as qd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=3000)
    parser.add_argument("--out", default="runs/gym-info")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    argv = [
        "run", "ns", "--env", "gym:gym_info_descriptor:InfoWalker-v0",
        "--set", "env.descriptor=info[x_position,y_position]",
        "--set", "env.descriptor_bounds=[[-1,-1],[1,1]]", "--set", "env.grid_cells=20",
        "--budget", str(args.budget), "--out", args.out, "--no-progress",
    ]  # fmt: skip
    for command in (argv, ["inspect", args.out]):
        if qd(command) != 0:
            raise SystemExit(f"qd {command[0]} failed")


if __name__ == "__main__":
    main()
