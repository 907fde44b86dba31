"""HardMaze: libfastsim's deceptive "maze_hard" as a batched torch simulator.

Behaviour follows libfastsim (``Posture::move``, ``Robot::_check_collision``, ``Laser::update``,
``Map::check_inter_pixel``) with the non-sticky walls of the sferes2 experiments: a move that
ends in collision puts the robot back where it was, but keeps the new heading. Collision and
laser casting are exact table lookups (see :mod:`envs.pixel_map`), so one step of B robots is a
handful of tensor operations. The constants, the robot state (:class:`MazeState`) and the
shipped bitmap are in :mod:`envs.hardmaze_state`.

Choices where the original leaves room:

* Observation (5): lasers at +45, 0, -45 degrees, then the left and right bumpers, encoded as
  the authors' gym wrapper reports them (``nav_env.py``, ``get_laserranges`` /
  ``get_bumpers`` in GPaolo/SERENE; issue 17): a laser reports the distance in world units
  to the wall it hits, clipped to [0, 100], and the maximum range 100 when it hits nothing
  within range; a bumper is 1.0 when touching, 0.0 otherwise. ``sensor_encoding="legacy"``
  keeps this package's encoding before issue 17: -1 for a laser that hits nothing (distances
  not clipped) and bumpers 1 / -1.
* Action: 2 wheel displacements; ``clip(action_scale * action, -max_speed, max_speed)``.
* ``real_to_pixel`` rounds half up (``floor(v + 0.5)``); libfastsim rounds half away from zero.
  They differ only for exact negative halves (laser end points left of or above the map).
* libfastsim's PBM loader leaves the last 8 pixels of the bitmap free (off-by-one); we load the
  bitmap as drawn. Those pixels are inside the outer wall and unreachable.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from envs.base import EnvSpec, goal_area, goal_reward
from envs.hardmaze_state import (
    GOALS,
    LASER_ANGLES,
    LASER_RANGE,
    ROBOT_RADIUS,
    SENSOR_ENCODINGS,
    START,
    WORLD_SIZE,
    MazeState,
    default_bitmap,
)
from envs.maze_render import RENDER_STYLES, MazeRenderer, robot_radius_for
from envs.pixel_map import NO_HIT, disk_obstacles, disk_offsets, laser_table


class HardMaze:
    """Batched HardMaze.

    Args:
        episode_length: steps per episode (2000 in the papers).
        action_scale: factor applied to the raw action (TAXONS used 5).
        max_speed: wheel displacement clip (libfastsim's maze env clips at 4).
        bitmap: optional obstacle map ``[H, W]`` bool (defaults to the shipped maze).
        render_style: frames for TAXONS/STAX's autoencoder (:mod:`envs.maze_render`):
            ``"authors"`` (default): the authors' render, white floor, black walls, red goals,
            blue robot, drawn at 200 x 200 and resized bilinearly to 64 x 64; ``"legacy"``: this
            package's render before issue 17 (grey maze, no goals, red robot).
        render_radius: radius (world units) of the robot's disk in renders; default: the
            style's own, 6 for ``"authors"`` (2 pixels of their 200-pixel image; the robot's
            radius is 10) and 90 for ``"legacy"``. A larger disk (e.g. 90) makes the robot a
            larger part of the frame, which the autoencoder then encodes (measurements in
            docs/algorithms/taxons.md). Only renders change, not the physics.
        sensor_encoding: ``"authors"`` (default): lasers that hit nothing report the range 100,
            bumpers 1.0 / 0.0, as the authors' wrapper; ``"legacy"``: -1 for no hit, bumpers
            1 / -1 (this package before issue 17). Only observations change.
    """

    image_y_down = True  # world y grows downward, as in the bitmap

    def __init__(
        self,
        *,
        episode_length: int = 2000,
        action_scale: float = 1.0,
        max_speed: float = 4.0,
        bitmap: np.ndarray | None = None,
        render_style: str = "authors",
        render_radius: float | None = None,
        sensor_encoding: str = "authors",
    ) -> None:
        if sensor_encoding not in SENSOR_ENCODINGS:
            raise ValueError(
                f"sensor_encoding must be one of {SENSOR_ENCODINGS}, got {sensor_encoding!r}"
            )
        self.sensor_encoding = sensor_encoding
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
        if render_style not in RENDER_STYLES:
            raise ValueError(f"render_style must be one of {RENDER_STYLES}, got {render_style!r}")
        self.render_style = render_style
        self.render_radius = robot_radius_for(render_style, render_radius)
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
                "render_style": self.render_style,
                "render_radius": self.render_radius,
                "max_speed": self.max_speed,
                "sensor_encoding": self.sensor_encoding,
            },
        )
        self.renderer = MazeRenderer(
            self.obstacles,
            world_size=WORLD_SIZE,
            goals=GOALS,
            image_size=self.spec.image_size,
            style=self.render_style,
            robot_radius=self.render_radius,
        )
        radius_px = int(math.floor(ROBOT_RADIUS * self.scale + 0.5))
        offsets = disk_offsets(radius_px)
        disk = disk_obstacles(self.obstacles, offsets)
        angles = np.arctan2(offsets[:, 1], offsets[:, 0]).astype(np.float32)
        order = np.argsort(angles, kind="stable")
        weights = np.left_shift(np.int64(1), np.arange(len(offsets), dtype=np.int64))
        self._n_disk = len(offsets)
        self._host = {
            "collide": torch.from_numpy(disk.any(1)),
            "disk_bits": torch.from_numpy((disk[:, order] * weights).sum(1).astype(np.int64)),
            "disk_sorted_angles": torch.from_numpy(
                np.concatenate([angles[order], angles[order] + np.float32(2 * math.pi)])
            ),
        }
        table = laser_table(self.obstacles, LASER_RANGE * self.scale)
        self._host["laser_hits"] = torch.from_numpy(self._hit_world(table.hits).reshape(-1, 2))
        self._host["laser_offset_index"] = torch.from_numpy(table.offset_index)
        self._n_offsets = table.hits.shape[1]
        self._reach = table.reach
        self._device_tables: dict[torch.device, dict[str, torch.Tensor]] = {}

    # -- tables --------------------------------------------------------------------------------
    def _hit_world(self, hits: np.ndarray, rows: int = 2000) -> np.ndarray:
        """World coordinates (float16) of every table hit pixel, -1 where there is none."""
        w = self.size_px
        out = np.empty(hits.shape, dtype=np.float16)
        for first in range(0, hits.shape[0], rows):
            flat = np.arange(first, min(first + rows, hits.shape[0]))
            start = np.stack([flat % w, flat // w], -1)[:, None, :]
            chunk = hits[first : first + rows]
            world = (start + chunk).astype(np.float32) / np.float32(self.scale)
            world[chunk[..., 0] == NO_HIT] = -1.0
            out[first : first + rows] = world
        return out

    def _constants(self, device: torch.device) -> dict[str, torch.Tensor]:
        one = lambda v, dtype=torch.float32: torch.full((1,), v, dtype=dtype, device=device)  # noqa: E731
        floats = {
            "0": 0.0,
            "1": 1.0,
            "-1": -1.0,
            "0.5": 0.5,
            "1e-10": 1e-10,
            "pi": math.pi,
            "2pi": 2 * math.pi,
            "pi/4": math.pi / 4,
            "3pi/4": 0.75 * math.pi,
            "5pi/4": 1.25 * math.pi,
            "radius": ROBOT_RADIUS,
            "1/wheel_dist": 1.0 / (2 * ROBOT_RADIUS),
            "max_speed": self.max_speed,
            "-max_speed": -self.max_speed,
            "action_scale": self.action_scale,
            "scale": self.scale,
            "1/scale": 1.0 / self.scale,
            "laser_range": LASER_RANGE,
        }
        longs = {
            "0_long": 0,
            "1_long": 1,
            "size": self.size_px,
            "last": self.size_px - 1,
            "n_offsets": self._n_offsets,
        }
        consts = {k: one(v) for k, v in floats.items()}
        consts.update({k: one(v, torch.int64) for k, v in longs.items()})
        consts["n_disk"] = one(self._n_disk, torch.int64)
        consts["low_mask"] = one((1 << self._n_disk) - 1, torch.int64)
        return consts

    def _tables(self, device: torch.device) -> dict[str, torch.Tensor]:
        device = torch.device(device)
        if device not in self._device_tables:
            tables = {k: v.to(device) for k, v in self._host.items()}
            angles = torch.tensor(LASER_ANGLES, dtype=torch.float32, device=device)
            # cos(a - pi/2) = sin(a): one cos call gives both components of each ray
            tables["laser_phase"] = angles[:, None] - torch.tensor(
                [0.0, math.pi / 2], device=device
            )
            span = 2 * self._reach + 1
            tables["laser_key"] = torch.tensor([1, span], device=device)
            # Index by dx + span * dy (may be negative: torch wraps negative indices), so the
            # table is rolled by the offset of (0, 0).
            tables["laser_offset_index"] = torch.roll(
                tables["laser_offset_index"], -(self._reach * span + self._reach)
            )
            # columns: left arc (theta + 3pi/2, theta + 2pi), right arc (theta, theta + pi/2)
            tables["arc_start"] = torch.tensor([1.5 * math.pi, 0.0], device=device)
            tables["arc_end"] = torch.tensor([2 * math.pi, 0.5 * math.pi], device=device)
            tables["const"] = self._constants(device)
            self._device_tables[device] = tables
        return self._device_tables[device]

    def _pixel(self, v: torch.Tensor, c: dict[str, torch.Tensor]) -> torch.Tensor:
        """libfastsim's real_to_pixel (round half up)."""
        return torch.floor(v * c["scale"] + c["0.5"]).long()

    def _pixels(self, pos: torch.Tensor, c: dict[str, torch.Tensor]):
        """Pixel ``[B, 2]`` under each position and its flat index ``[B]``."""
        pix = torch.clamp(self._pixel(pos, c), c["0_long"], c["last"])
        return pix, pix[:, 1] * c["size"] + pix[:, 0]

    # -- protocol ------------------------------------------------------------------------------
    def reset(
        self, batch_size: int, *, device: torch.device | str = "cpu", generator=None
    ) -> MazeState:
        """Every robot at (60, 450), heading pi/4 (the maze is deterministic)."""
        device = torch.device(device)
        pos = torch.tensor(START[:2], dtype=torch.float32, device=device).repeat(batch_size, 1)
        theta = torch.full((batch_size,), START[2], dtype=torch.float32, device=device)
        return self.make_state(pos, theta)

    def make_state(self, pos: torch.Tensor, theta: torch.Tensor, t: int = 0) -> MazeState:
        """A state at given poses (bumpers off), e.g. for tests and replays."""
        pos = pos.to(torch.float32)
        pixel_xy, pixel = self._pixels(pos, self._tables(pos.device)["const"])
        return MazeState(
            pos=pos,
            theta=theta.to(torch.float32),
            bumpers=torch.full_like(pos, -1.0),
            pixel_xy=pixel_xy,
            pixel=pixel,
            t=torch.tensor(t, dtype=torch.int64, device=pos.device),
        )

    def step(self, state: MazeState, actions: torch.Tensor) -> MazeState:
        """One libfastsim move with non-sticky collision.

        Constants are one-element tensors (``c``): on the CPU an op with a Python scalar costs
        about twice as much as with a tensor, and at NS's batch of 200 op overhead dominates.
        """
        tables = self._tables(state.pos.device)
        c = tables["const"]
        wheels = actions * c["action_scale"] if self.action_scale != 1.0 else actions
        wheels = torch.clamp(wheels, c["-max_speed"], c["max_speed"])
        d_l = wheels[:, 0]
        alpha = (wheels[:, 1] - d_l) * c["1/wheel_dist"]
        turning = alpha.abs() > c["1e-10"]
        # Posture::move: offset ((cos a - 1) r, sin a r), r = d_l / a + R, rotated by
        # theta - pi/2; a straight move is the same formula with offset (0, d_l).
        r = d_l / torch.where(turning, alpha, c["1"]) + c["radius"]
        local_x = torch.where(turning, (torch.cos(alpha) - c["1"]) * r, c["0"])
        local_y = torch.where(turning, torch.sin(alpha) * r, d_l)
        cos_t, sin_t = torch.cos(state.theta), torch.sin(state.theta)
        # rotation by theta - pi/2: cos -> sin(theta), sin -> -cos(theta)
        step = torch.stack(
            [sin_t * local_x + cos_t * local_y, sin_t * local_y - cos_t * local_x], 1
        )
        new_pos = state.pos + step
        heading = state.theta + torch.where(turning, alpha, c["0"])
        theta = torch.remainder(heading + c["pi"], c["2pi"]) - c["pi"]
        pixel_xy, pixel = self._pixels(new_pos, c)
        collided = tables["collide"][pixel]
        bumpers = self._bumpers(tables, pixel, theta)
        return MazeState(
            pos=torch.where(collided[:, None], state.pos, new_pos),
            theta=theta,
            bumpers=bumpers,
            pixel_xy=torch.where(collided[:, None], state.pixel_xy, pixel_xy),
            pixel=torch.where(collided, state.pixel, pixel),
            t=state.t + c["1_long"][0],
        )

    def _bumpers(self, tables: dict, pixel: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Left/right bumpers ``[B, 2]`` (1 / -1) at ``pixel`` with heading ``theta``.

        libfastsim sets the right bumper when an obstacle pixel of the robot's disk lies at an
        angle in (0, pi/2) from the heading, the left one for (-pi/2, 0). The disk offsets,
        sorted by angle (list doubled to [-pi, 3pi) for wrap-around), turn each arc into a
        contiguous bit range found by two binary searches; ``disk_bits[p]`` has the bits of the
        obstacle offsets around pixel p. Exact, and O(B) instead of O(B x disk size).
        """
        c = tables["const"]
        angles = tables["disk_sorted_angles"]
        starts = theta[:, None] + tables["arc_start"]
        ends = theta[:, None] + tables["arc_end"]
        lo = torch.searchsorted(angles, starts, right=True)
        hi = torch.searchsorted(angles, ends)
        arc = torch.bitwise_left_shift(c["1_long"], hi) - torch.bitwise_left_shift(c["1_long"], lo)
        arc = torch.bitwise_or(
            torch.bitwise_and(arc, c["low_mask"]), torch.bitwise_right_shift(arc, c["n_disk"])
        )
        hits = torch.bitwise_and(arc, tables["disk_bits"][pixel][:, None]) != c["0_long"]
        return torch.where(hits, c["1"], c["-1"])

    def lasers(self, state: MazeState) -> torch.Tensor:
        """Raw laser distances ``[B, 3]``: distance to the reported hit pixel, -1 when none
        (:meth:`observe` encodes them as ``sensor_encoding`` says)."""
        tables = self._tables(state.pos.device)
        c = tables["const"]
        angles = state.theta[:, None, None] + tables["laser_phase"]  # [B, 3, 2]: cos, sin
        ends = state.pos[:, None, :] + torch.cos(angles) * c["laser_range"]
        offsets = self._pixel(ends, c) - state.pixel_xy[:, None, :]
        offset = tables["laser_offset_index"][(offsets * tables["laser_key"]).sum(-1)]
        # world position of the reported hit pixel (float16 holds 3 * pixel exactly), -1: none
        hit = tables["laser_hits"][state.pixel[:, None] * c["n_offsets"] + offset].float()
        delta = hit - state.pos[:, None, :]
        dist = torch.hypot(delta[..., 0], delta[..., 1])  # torch.sqrt rounds differently in SIMD
        return torch.where(hit[..., 0] < c["0"], c["-1"], dist)

    def observe(self, state: MazeState) -> torch.Tensor:
        """``[B, 5]``: 3 lasers, then the left and right bumpers. ``"authors"`` encoding: laser
        distances clipped to [0, 100], 100 when nothing is hit, bumpers 1.0 / 0.0;
        ``"legacy"``: -1 when nothing is hit, bumpers 1 / -1."""
        lasers = self.lasers(state)
        if self.sensor_encoding == "legacy":
            return torch.cat([lasers, state.bumpers], 1)
        c = self._tables(state.pos.device)["const"]
        lasers = torch.where(lasers < c["0"], c["laser_range"], lasers.clamp(max=LASER_RANGE))
        return torch.cat([lasers, (state.bumpers > c["0"]).float()], 1)

    def _goal_distances(self, state: MazeState) -> torch.Tensor:
        goals = torch.tensor(GOALS, dtype=torch.float32, device=state.pos.device)
        return torch.linalg.vector_norm(state.pos[:, None] - goals[None, :, :2], dim=-1), goals[
            :, 2
        ]

    def reward(self, state: MazeState) -> torch.Tensor:
        """(r - d) / r inside a goal, 0 elsewhere; only once the episode is over."""
        dist, radius = self._goal_distances(state)
        return goal_reward(dist, radius, state.t >= self.spec.episode_length)

    def reward_area(self, state: MazeState) -> torch.Tensor:
        """Index of the goal the robot is in (-1 outside every goal)."""
        return goal_area(*self._goal_distances(state))

    def descriptor(self, state: MazeState) -> torch.Tensor:
        """Final position divided by the world size, ``[B, 2]`` in [0, 1]."""
        return state.pos / WORLD_SIZE

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
        """Top-down ``[B, 64, 64, 3]`` uint8 frames in the ``render_style`` (see
        :mod:`envs.maze_render`); ``state`` needs only ``x`` and ``y``."""
        return self.renderer.render(state.x, state.y)
