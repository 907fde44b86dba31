"""HardMaze's constants (world size, robot, lasers, start, goals), its batched robot state
:class:`MazeState` and the shipped obstacle bitmap; the simulator is :mod:`envs.hardmaze`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources

import numpy as np
import torch

from envs.pixel_map import load_pbm

WORLD_SIZE = 600.0
ROBOT_RADIUS = 10.0
START = (60.0, 450.0, math.pi / 4)
LASER_ANGLES = (math.pi / 4, 0.0, -math.pi / 4)
LASER_RANGE = 100.0
SENSOR_ENCODINGS = ("authors", "legacy")
GOALS = ((60.0, 60.0, 50.0), (100.0, 200.0, 50.0))


@dataclass
class MazeState:
    """Batched robot state.

    Attributes:
        pos: ``[B, 2]`` float32 position (x, y) in world units.
        theta: ``[B]`` float32 heading.
        bumpers: ``[B, 2]`` float32 left/right bumper, 1 touching, -1 not (internal: the
            observation encodes them as ``sensor_encoding`` says).
        pixel_xy: ``[B, 2]`` int64 pixel under the robot's centre.
        pixel: ``[B]`` int64 flat index of that pixel.
        t: 0-dim int64 step counter.
    """

    pos: torch.Tensor
    theta: torch.Tensor
    bumpers: torch.Tensor
    pixel_xy: torch.Tensor
    pixel: torch.Tensor
    t: torch.Tensor

    @property
    def x(self) -> torch.Tensor:
        return self.pos[:, 0]

    @property
    def y(self) -> torch.Tensor:
        return self.pos[:, 1]

    @property
    def bumper_left(self) -> torch.Tensor:
        return (self.bumpers[:, 0] > 0).float()

    @property
    def bumper_right(self) -> torch.Tensor:
        return (self.bumpers[:, 1] > 0).float()


def _normalize_angle(a: torch.Tensor) -> torch.Tensor:
    """Wrap into [-pi, pi) (libfastsim wraps into [-pi, pi]; equal except at exactly pi)."""
    return torch.remainder(a + math.pi, 2 * math.pi) - math.pi


def default_bitmap() -> np.ndarray:
    """The HardMaze obstacle bitmap shipped with the package, ``[200, 200]`` bool."""
    with resources.as_file(resources.files("envs") / "data" / "maze_hard.pbm") as path:
        return load_pbm(path)
