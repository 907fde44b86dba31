"""HardMaze: libfastsim's deceptive "maze_hard" as a batched torch simulator.

Behaviour follows libfastsim (``Posture::move``, ``Robot::_check_collision``, ``Laser::update``,
``Map::check_inter_pixel``) with the non-sticky walls of the sferes2 experiments: a move that
ends in collision puts the robot back where it was, but keeps the new heading. Collision and
laser casting are exact table lookups (see :mod:`envs.pixel_map`), so one step of B robots is a
handful of tensor operations.

Choices where the original leaves room:

* Observation (5): lasers at +45, 0, -45 degrees (distance in world units, -1 when no wall
  within range), then the left and right bumpers as 1 (touching) / -1 (not touching).
* Action: 2 wheel displacements; ``clip(action_scale * action, -max_speed, max_speed)``.
* ``real_to_pixel`` rounds half up (``floor(v + 0.5)``); libfastsim rounds half away from zero.
  They differ only for exact negative halves (laser end points left of or above the map).
* libfastsim's PBM loader leaves the last 8 pixels of the bitmap free (off-by-one); we load the
  bitmap as drawn. Those pixels are inside the outer wall and unreachable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from importlib import resources

import numpy as np
import torch

from envs.base import EnvSpec
from envs.pixel_map import NO_HIT, disk_obstacles, disk_offsets, laser_table, load_pbm

WORLD_SIZE = 600.0
ROBOT_RADIUS = 10.0
START = (60.0, 450.0, math.pi / 4)
LASER_ANGLES = (math.pi / 4, 0.0, -math.pi / 4)
LASER_RANGE = 100.0
GOALS = ((60.0, 60.0, 50.0), (100.0, 200.0, 50.0))


@dataclass
class MazeState:
    """Batched robot state (all ``[B]`` float32 tensors, ``t`` a 0-dim int64 tensor)."""

    x: torch.Tensor
    y: torch.Tensor
    theta: torch.Tensor
    bumper_left: torch.Tensor
    bumper_right: torch.Tensor
    t: torch.Tensor


def _normalize_angle(a: torch.Tensor) -> torch.Tensor:
    """Wrap into [-pi, pi) (libfastsim wraps into [-pi, pi]; equal except at exactly pi)."""
    return torch.remainder(a + math.pi, 2 * math.pi) - math.pi


def default_bitmap() -> np.ndarray:
    """The HardMaze obstacle bitmap shipped with the package, ``[200, 200]`` bool."""
    with resources.as_file(resources.files("envs") / "data" / "maze_hard.pbm") as path:
        return load_pbm(path)


class HardMaze:
    """Batched HardMaze.

    Args:
        episode_length: steps per episode (2000 in the papers).
        action_scale: factor applied to the raw action (TAXONS used 5).
        max_speed: wheel displacement clip (libfastsim's maze env clips at 4).
        bitmap: optional obstacle map ``[H, W]`` bool (defaults to the shipped maze).
    """

    def __init__(
        self,
        *,
        episode_length: int = 2000,
        action_scale: float = 1.0,
        max_speed: float = 4.0,
        bitmap: np.ndarray | None = None,
    ) -> None:
        if episode_length <= 0:
            raise ValueError(f"episode_length must be > 0, got {episode_length}")
        self.obstacles = default_bitmap() if bitmap is None else np.asarray(bitmap, dtype=bool)
        h, w = self.obstacles.shape
        if h != w:
            raise ValueError(f"the maze bitmap must be square, got {h}x{w}")
        self.size_px = w
        self.scale = w / WORLD_SIZE  # pixels per world unit
        self.action_scale = float(action_scale)
        self.max_speed = float(max_speed)
        self.spec = EnvSpec(
            name="hardmaze",
            obs_size=5,
            action_size=2,
            episode_length=int(episode_length),
            descriptor_size=2,
            descriptor_low=(0.0, 0.0),
            descriptor_high=(1.0, 1.0),
            grid_shape=(50, 50),
            reward_areas=len(GOALS),
            options={
                "episode_length": int(episode_length),
                "action_scale": self.action_scale,
                "max_speed": self.max_speed,
            },
        )
        radius_px = int(math.floor(ROBOT_RADIUS * self.scale + 0.5))
        offsets = disk_offsets(radius_px)
        disk = disk_obstacles(self.obstacles, offsets)
        self._host = {
            "disk": torch.from_numpy(disk),
            "collide": torch.from_numpy(disk.any(1)),
            "disk_angles": torch.from_numpy(
                np.arctan2(offsets[:, 1], offsets[:, 0]).astype(np.float32)
            ),
        }
        table = laser_table(self.obstacles, LASER_RANGE * self.scale)
        self._host["laser_hits"] = torch.from_numpy(table.hits.reshape(-1, 2))
        self._host["laser_offset_index"] = torch.from_numpy(table.offset_index)
        self._n_offsets = table.hits.shape[1]
        self._reach = table.reach
        self._device_tables: dict[torch.device, dict[str, torch.Tensor]] = {}

    # -- tables --------------------------------------------------------------------------------
    def _tables(self, device: torch.device) -> dict[str, torch.Tensor]:
        device = torch.device(device)
        if device not in self._device_tables:
            tables = {k: v.to(device) for k, v in self._host.items()}
            tables["laser_angles"] = torch.tensor(LASER_ANGLES, dtype=torch.float32, device=device)
            self._device_tables[device] = tables
        return self._device_tables[device]

    def _pixel(self, v: torch.Tensor) -> torch.Tensor:
        return torch.floor(v * self.scale + 0.5).long()

    # -- protocol ------------------------------------------------------------------------------
    def reset(
        self, batch_size: int, *, device: torch.device | str = "cpu", generator=None
    ) -> MazeState:
        """Every robot at (60, 450), heading pi/4 (the maze is deterministic)."""
        device = torch.device(device)
        full = lambda v: torch.full((batch_size,), v, dtype=torch.float32, device=device)  # noqa: E731
        return MazeState(
            x=full(START[0]),
            y=full(START[1]),
            theta=full(START[2]),
            bumper_left=full(0.0),
            bumper_right=full(0.0),
            t=torch.zeros((), dtype=torch.int64, device=device),
        )

    def step(self, state: MazeState, actions: torch.Tensor) -> MazeState:
        """One libfastsim move with non-sticky collision."""
        tables = self._tables(state.x.device)
        wheels = (actions * self.action_scale).clamp(-self.max_speed, self.max_speed)
        d_l, d_r = wheels[:, 0], wheels[:, 1]
        wheel_dist = 2 * ROBOT_RADIUS
        alpha = (d_r - d_l) / wheel_dist
        turning = alpha.abs() > 1e-10
        safe_alpha = torch.where(turning, alpha, torch.ones_like(alpha))
        r = d_l / safe_alpha + wheel_dist / 2
        local_x = (torch.cos(alpha) - 1) * r
        local_y = torch.sin(alpha) * r
        rot = state.theta - math.pi / 2
        cos_r, sin_r = torch.cos(rot), torch.sin(rot)
        cos_t, sin_t = torch.cos(state.theta), torch.sin(state.theta)
        dx = torch.where(turning, cos_r * local_x - sin_r * local_y, d_l * cos_t)
        dy = torch.where(turning, sin_r * local_x + cos_r * local_y, d_l * sin_t)
        theta = _normalize_angle(state.theta + torch.where(turning, alpha, torch.zeros_like(alpha)))
        new_x, new_y = state.x + dx, state.y + dy
        last = self.size_px - 1
        pix = self._pixel(new_y).clamp_(0, last) * self.size_px + self._pixel(new_x).clamp_(0, last)
        touching = tables["disk"][pix]  # [B, K] obstacle pixels in the robot's disk
        collided = tables["collide"][pix]
        rel = _normalize_angle(tables["disk_angles"] - theta[:, None])
        right = (touching & (rel > 0) & (rel < math.pi / 2)).any(1)
        left = (touching & (rel < 0) & (rel > -math.pi / 2)).any(1)
        return MazeState(
            x=torch.where(collided, state.x, new_x),
            y=torch.where(collided, state.y, new_y),
            theta=theta,
            bumper_left=left.float(),
            bumper_right=right.float(),
            t=state.t + 1,
        )

    def lasers(self, state: MazeState) -> torch.Tensor:
        """Laser distances ``[B, 3]``: distance to the reported hit pixel, -1 when none."""
        tables = self._tables(state.x.device)
        angles = state.theta[:, None] + tables["laser_angles"]
        sx, sy = self._pixel(state.x), self._pixel(state.y)
        ex = self._pixel(state.x[:, None] + torch.cos(angles) * LASER_RANGE) - sx[:, None]
        ey = self._pixel(state.y[:, None] + torch.sin(angles) * LASER_RANGE) - sy[:, None]
        span = 2 * self._reach + 1
        offset = tables["laser_offset_index"][(ey + self._reach) * span + (ex + self._reach)]
        start = (sy * self.size_px + sx)[:, None]
        hit = tables["laser_hits"][start * self._n_offsets + offset].to(torch.float32)  # [B,3,2]
        hx = (sx[:, None] + hit[..., 0]) / self.scale - state.x[:, None]
        hy = (sy[:, None] + hit[..., 1]) / self.scale - state.y[:, None]
        dist = torch.hypot(hx, hy)  # torch.sqrt rounds differently in its SIMD tail on CPU
        return torch.where(hit[..., 0] == NO_HIT, torch.full_like(dist, -1.0), dist)

    def observe(self, state: MazeState) -> torch.Tensor:
        """``[B, 5]``: 3 lasers, then left and right bumpers as 1 / -1."""
        bumpers = torch.stack([state.bumper_left, state.bumper_right], 1) * 2 - 1
        return torch.cat([self.lasers(state), bumpers], 1)

    def _goal_distances(self, state: MazeState) -> torch.Tensor:
        goals = torch.tensor(GOALS, dtype=torch.float32, device=state.x.device)
        pos = torch.stack([state.x, state.y], 1)
        return torch.linalg.vector_norm(pos[:, None] - goals[None, :, :2], dim=-1), goals[:, 2]

    def reward(self, state: MazeState) -> torch.Tensor:
        """(r - d) / r inside a goal, 0 elsewhere; only once the episode is over."""
        dist, radius = self._goal_distances(state)
        per_goal = ((radius - dist) / radius).clamp(min=0)
        over = state.t >= self.spec.episode_length
        return torch.where(over, per_goal.max(1).values, torch.zeros_like(state.x))

    def reward_area(self, state: MazeState) -> torch.Tensor:
        """Index of the goal the robot is in (-1 outside every goal)."""
        dist, radius = self._goal_distances(state)
        inside = dist < radius
        first = inside.float().argmax(1)
        return torch.where(inside.any(1), first, torch.full_like(first, -1))

    def descriptor(self, state: MazeState) -> torch.Tensor:
        """Final position divided by the world size, ``[B, 2]`` in [0, 1]."""
        return torch.stack([state.x, state.y], 1) / WORLD_SIZE

    def done(self, state: MazeState) -> torch.Tensor:
        """HardMaze episodes never end early."""
        return (state.t >= self.spec.episode_length).expand(state.x.shape[0])

    def background(self, size: int | None = None) -> np.ndarray:
        """RGB image ``[size, size, 3]`` uint8 of the maze (walls dark), for plots and renders."""
        img = torch.from_numpy(self.obstacles.astype(np.float32))[None, None]
        if size is not None and size != self.size_px:
            img = torch.nn.functional.interpolate(img, size=(size, size), mode="area")
        grey = (235 - 200 * img[0, 0]).round().to(torch.uint8)
        return grey[..., None].expand(-1, -1, 3).contiguous().numpy()

    def goal_circles(self) -> list[tuple[float, float, float]]:
        """Goals as (x, y, radius) in descriptor units, for plots."""
        return [(x / WORLD_SIZE, y / WORLD_SIZE, r / WORLD_SIZE) for x, y, r in GOALS]

    def render(self, state: MazeState) -> torch.Tensor:
        """Top-down ``[B, 64, 64, 3]`` uint8 images of the maze with the robot as a red disk."""
        size = self.spec.image_size
        device = state.x.device
        base = torch.from_numpy(self.background(size)).to(device)
        centres = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) * (
            WORLD_SIZE / size
        )
        d2 = (centres[None, None, :] - state.x[:, None, None]) ** 2 + (
            centres[None, :, None] - state.y[:, None, None]
        ) ** 2
        radius = max(ROBOT_RADIUS, 1.5 * WORLD_SIZE / size)
        robot = (d2 <= radius * radius)[..., None]
        colour = torch.tensor([220, 30, 30], dtype=torch.uint8, device=device)
        return torch.where(robot, colour, base.expand(state.x.shape[0], -1, -1, -1))

    def to(self, device) -> HardMaze:
        """Tables move lazily; kept for symmetry with torch modules."""
        self._tables(torch.device(device))
        return self

    def replace_state(self, state: MazeState, **changes) -> MazeState:
        """Convenience for tests: a copy of ``state`` with some fields changed."""
        return replace(state, **changes)
