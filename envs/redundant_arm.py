"""Redundant arm (SERENE, STAX; after Loviken's planar arm): a 20-joint arm in the unit square.

The original package (``gym_redarm``) is not available, so the details below are our choices,
kept close to what the papers describe and tested in ``tests/test_redundant_arm.py``:

* Kinematics: 20 links of length 0.05 (total length 1), base at (0.5, 0.5). Joint ``i`` is the
  angle of link ``i`` relative to link ``i - 1`` (joint 0: absolute angle of link 0, 0 = +x,
  counter-clockwise positive); the joint points are the cumulative sums of the links.
* Initial posture, a compact spiral around the base: joint 0 = 0 and joint ``i`` =
  ``SPIRAL / sqrt(i)`` for ``i >= 1`` with ``SPIRAL = 1.5`` rad (curvature decreasing along the
  arm: 1.76 turns, every joint point within 0.147 of the base, links ``i`` and ``j >= i + 3``
  at least 0.058 apart; the end effector starts at about (0.372, 0.472)).
* Walls: four bars 0.2 long in a cross around the base, from 0.25 to 0.45 away from it on the
  lines x = 0.5 and y = 0.5 (``WALLS``). They leave a gap of radius 0.25 around the base (the
  spiral clears them by 0.1) and gaps of 0.05 along the border, so they partially separate
  the four quadrants; no goal is behind a closed wall.
* Dynamics: the 20 actions, clipped to [-1, 1], are joint accelerations scaled by
  ``acceleration`` (``ACCELERATION = 0.5`` rad/s^2). A step lasts ``DT = 0.01`` s and is split
  into ``substeps`` (2) of semi-implicit Euler (speed, then angle). Joint angles are kept in
  [-pi, pi] (a joint reaching the limit stops there). A joint held at full acceleration turns
  by 1.56 rad over the horizon, and the twenty joints add up: a cross-entropy search over
  5-piece open-loop controls reaches every goal without an illegal move (within 0.005 of the
  centres), while random SERENE controllers move the end effector over ~440 of the 2500 cells
  (a larger scale kills almost every random controller early; 0.25 also reaches the goals).
* Illegal moves stop the episode: after each step the new pose is checked; if the end effector
  moved faster than ``max_tip_speed`` (``MAX_TIP_SPEED = 1`` unit/s, i.e. 0.01 = a fifth of a
  link per step), a joint point left the unit square, a link crosses a wall bar, or two
  non-adjacent links cross (self-collision), the move is not applied: the row keeps its last
  legal state (angles and speeds) for the rest of the episode and ``done`` is true for it.
  Crossings are proper crossings of zero-thickness segments: touching or collinear segments do
  not count, nor crossings by less than about 1e-6 (``EPS``, so that rounding never decides).
  Legality is checked on the pose at the end of each step (a step is one move), so a fast link
  may in principle pass a wall end between two checks.
* Horizon: ``episode_length`` 250 steps (2.5 s). The authors' evaluator cut episodes at 100
  steps while the original env only rewards at 250; with 100 steps the same search does not
  reach the two far goals, so we use 250, where the reward exists and every goal is reachable.
* Reward: given once, at ``t >= episode_length``: ``(r - d) / r`` of the end effector for the
  goal it lies in (goals (0.25, 0.25), (0.85, 0.85), (0.25, 0.90), radius 0.05), 0 elsewhere
  and before the horizon. Rows that stopped early keep their frozen pose and are rewarded on
  it at the horizon, like the others.

Observation (20): joint angles / pi, in [-1, 1]. Descriptor: end effector (x, y), bounds
[0, 1]^2, 50 x 50 grid. ``reward_area``: index of the goal containing the end effector, -1 if
none. Everything is batched over the population, with no Python loop over individuals, and
batch-invariant on the CPU (no op whose rounding depends on the batch size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from envs.base import EnvSpec, goal_area, goal_reward

N_JOINTS = 20
LINK = 0.05
BASE = (0.5, 0.5)
SPIRAL = 1.5
WALLS = (
    ((0.5, 0.75), (0.5, 0.95)),  # north
    ((0.5, 0.05), (0.5, 0.25)),  # south
    ((0.05, 0.5), (0.25, 0.5)),  # west
    ((0.75, 0.5), (0.95, 0.5)),  # east
)
GOALS = ((0.25, 0.25, 0.05), (0.85, 0.85, 0.05), (0.25, 0.90, 0.05))
DT = 0.01
ACCELERATION = 0.5
MAX_TIP_SPEED = 1.0
EPISODE_LENGTH = 250
EPS = 1e-14  # side products above -EPS are rounding noise (sides are ~ link x distance)

ARM_COLOUR = (40, 60, 200)
TIP_COLOUR = (220, 30, 30)
WALL_GREY = 60
FLOOR_GREY = 225


def spiral_joints() -> list[float]:
    """The initial posture: joint 0 = 0, joint i = SPIRAL / sqrt(i)."""
    return [0.0] + [SPIRAL / math.sqrt(i) for i in range(1, N_JOINTS)]


def _pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """Links ``(i, j)`` with ``j >= i + 2`` (the non-adjacent pairs), as two index tensors."""
    i, j = torch.triu_indices(N_JOINTS, N_JOINTS, offset=2)
    return i, j


@dataclass
class ArmState:
    """Batched state.

    Attributes:
        joints: ``[B, 20]`` joint angles in [-pi, pi].
        speeds: ``[B, 20]`` joint speeds (rad/s).
        tip: ``[B, 2]`` end effector position.
        stopped: ``[B]`` bool, an illegal move ended the episode (the state is frozen).
        t: 0-dim int64 step counter (shared by the batch).
    """

    joints: torch.Tensor
    speeds: torch.Tensor
    tip: torch.Tensor
    stopped: torch.Tensor
    t: torch.Tensor


class RedundantArm:
    """Batched redundant arm (see the module docstring).

    Args:
        episode_length: steps per episode (250).
        substeps: integration sub-steps per step of ``DT`` seconds.
        acceleration: joint acceleration (rad/s^2) of an action of 1.
        max_tip_speed: end-effector speed (units/s) above which a move is illegal.
    """

    def __init__(
        self,
        *,
        episode_length: int = EPISODE_LENGTH,
        substeps: int = 2,
        acceleration: float = ACCELERATION,
        max_tip_speed: float = MAX_TIP_SPEED,
    ) -> None:
        if episode_length <= 0 or substeps <= 0:
            raise ValueError("episode_length and substeps must be > 0")
        if acceleration <= 0 or max_tip_speed <= 0:
            raise ValueError("acceleration and max_tip_speed must be > 0")
        self.substeps = int(substeps)
        self.acceleration = float(acceleration)
        self.max_tip_speed = float(max_tip_speed)
        self.spec = EnvSpec(
            name="redundant-arm",
            obs_size=N_JOINTS,
            action_size=N_JOINTS,
            episode_length=int(episode_length),
            descriptor_size=2,
            descriptor_low=(0.0, 0.0),
            descriptor_high=(1.0, 1.0),
            grid_shape=(50, 50),
            reward_areas=len(GOALS),
            final_reward_only=True,
            can_terminate=True,
            options={
                "episode_length": int(episode_length),
                "substeps": self.substeps,
                "acceleration": self.acceleration,
                "max_tip_speed": self.max_tip_speed,
            },
        )
        self._device_tables: dict[torch.device, dict[str, torch.Tensor]] = {}

    # -- constants -----------------------------------------------------------------------------
    def _tables(self, device: torch.device) -> dict[str, torch.Tensor]:
        """One-element constants and index tables on ``device`` (CPU ops with a Python scalar
        operand are slower than with a tensor)."""
        device = torch.device(device)
        if device not in self._device_tables:
            one = lambda v: torch.full((1,), v, dtype=torch.float32, device=device)  # noqa: E731
            h = DT / self.substeps
            max_step = self.max_tip_speed * DT
            tables = {
                "0": one(0.0),
                "1": one(1.0),
                "-1": one(-1.0),
                "pi": one(math.pi),
                "-pi": one(-math.pi),
                "1/pi": one(1.0 / math.pi),
                "link": one(LINK),
                "phase": torch.tensor([[0.0], [math.pi / 2]], device=device),
                "h": one(h),
                "h*acc": one(h * self.acceleration),
                "max_step^2": one(max_step * max_step),
                "-eps": one(-EPS),
                "1_long": torch.ones((), dtype=torch.int64, device=device),
                "horizon": torch.tensor(self.spec.episode_length, device=device),
                "base": torch.tensor(BASE, dtype=torch.float32, device=device),
                "walls": torch.tensor(WALLS, dtype=torch.float32, device=device),  # [W, 2, 2]
                "goals": torch.tensor(GOALS, dtype=torch.float32, device=device),
                "spiral": torch.tensor(spiral_joints(), dtype=torch.float32, device=device),
            }
            i, j = _pairs()
            n = N_JOINTS
            # flat indices into the [21, 20] table cross(link j, point k - start of link j)
            tables["pair_a"] = (i * n + j).to(device)  # start of link i vs link j
            tables["pair_b"] = ((i + 1) * n + j).to(device)  # end of link i vs link j
            tables["pair_c"] = (j * n + i).to(device)  # start of link j vs link i
            tables["pair_d"] = ((j + 1) * n + i).to(device)  # end of link j vs link i
            self._device_tables[device] = tables
        return self._device_tables[device]

    # -- kinematics ----------------------------------------------------------------------------
    def _xy(self, joints: torch.Tensor) -> torch.Tensor:
        """Joint points as ``[B, 2, 21]`` (x row, y row): the base, then the end of every link."""
        c = self._tables(joints.device)
        angles = torch.cumsum(joints, 1)
        # cos(a - pi/2) = sin(a): one call gives both components of every link
        links = torch.cos(angles[:, None, :] - c["phase"]) * c["link"]  # [B, 2, 20]
        start = c["base"][:, None].expand(joints.shape[0], 2, 1)
        return torch.cat([start, start + torch.cumsum(links, 2)], 2)

    def points(self, joints: torch.Tensor) -> torch.Tensor:
        """Joint points ``[B, 21, 2]``: the base, then the end of every link (the last one is
        the end effector)."""
        return self._xy(joints).transpose(1, 2)

    def violations(self, points: torch.Tensor, previous_tip: torch.Tensor) -> torch.Tensor:
        """Which rules the pose ``points [B, 21, 2]`` breaks, ``[B, 4]`` bool (see
        :meth:`_violations`)."""
        return self._violations(points.transpose(1, 2), previous_tip)

    def _violations(self, xy: torch.Tensor, previous_tip: torch.Tensor) -> torch.Tensor:
        """Rules broken by the pose ``xy [B, 2, 21]``, ``[B, 4]`` bool: end effector too fast
        (moved more than ``max_tip_speed * DT`` from ``previous_tip``), a joint point out of the
        unit square, a link crossing a wall bar, two non-adjacent links crossing.

        Segments cross when each one's end points lie strictly on both sides of the other's
        line; the products of the two sides must be below ``-EPS`` (a few rounding errors), so
        collinear or touching segments never count, whatever their rounding.
        """
        c = self._tables(xy.device)
        batch = xy.shape[0]
        px, py = xy[:, 0], xy[:, 1]  # [B, 21], rows contiguous
        mx, my = px[:, -1] - previous_tip[:, 0], py[:, -1] - previous_tip[:, 1]
        too_fast = mx * mx + my * my > c["max_step^2"]
        outside = ((xy < c["0"]) | (xy > c["1"])).flatten(1).any(1)

        ex, ey = px[:, 1:] - px[:, :-1], py[:, 1:] - py[:, :-1]  # [B, 20] link vectors
        # walls: side of every joint point w.r.t. every bar, and of both bar ends w.r.t. links
        walls = c["walls"]
        w0x, w0y, w1x, w1y = walls[:, 0, 0], walls[:, 0, 1], walls[:, 1, 0], walls[:, 1, 1]
        side = (w1x - w0x) * (py[..., None] - w0y) - (w1y - w0y) * (px[..., None] - w0x)
        links_straddle = side[:, :-1] * side[:, 1:] < c["-eps"]  # [B, 20, W]
        sx, sy = px[:, :-1, None], py[:, :-1, None]
        exw, eyw = ex[..., None], ey[..., None]
        end0 = exw * (w0y - sy) - eyw * (w0x - sx)
        end1 = exw * (w1y - sy) - eyw * (w1x - sx)
        wall = (links_straddle & (end0 * end1 < c["-eps"])).flatten(1).any(1)

        # self-collision: cross(link j, point k - start of link j) for every point k, link j,
        # as cross(link j, point k) - cross(link j, start of link j) (one op fewer on [B, 21, 20])
        side = ex[:, None, :] * py[:, :, None] - ey[:, None, :] * px[:, :, None]
        own = ex * py[:, :-1] - ey * px[:, :-1]  # [B, 20]
        side = (side - own[:, None, :]).reshape(batch, -1)
        d1 = side.index_select(1, c["pair_a"])
        d2 = side.index_select(1, c["pair_b"])
        d3 = side.index_select(1, c["pair_c"])
        d4 = side.index_select(1, c["pair_d"])
        crossing = ((d1 * d2 < c["-eps"]) & (d3 * d4 < c["-eps"])).any(1)
        return torch.stack([too_fast, outside, wall, crossing], 1)

    # -- protocol ------------------------------------------------------------------------------
    def make_state(
        self, joints: torch.Tensor, speeds: torch.Tensor | None = None, t: int = 0
    ) -> ArmState:
        """A (running) state at given joint angles ``[B, 20]``, e.g. for tests and replays."""
        joints = joints.to(torch.float32)
        speeds = torch.zeros_like(joints) if speeds is None else speeds.to(torch.float32)
        return ArmState(
            joints=joints,
            speeds=speeds,
            tip=self._xy(joints)[:, :, -1].contiguous(),
            stopped=torch.zeros(joints.shape[0], dtype=torch.bool, device=joints.device),
            t=torch.tensor(t, dtype=torch.int64, device=joints.device),
        )

    def reset(self, batch_size: int, *, device="cpu", generator=None) -> ArmState:
        """Every arm at rest in the spiral posture (the env is deterministic)."""
        spiral = self._tables(torch.device(device))["spiral"]
        return self.make_state(spiral.expand(batch_size, N_JOINTS).clone())

    def step(self, state: ArmState, actions: torch.Tensor) -> ArmState:
        """Integrate the accelerations; illegal moves and finished rows keep the old state."""
        c = self._tables(state.joints.device)
        acc = torch.clamp(actions, c["-1"], c["1"]) * c["h*acc"]  # speed change per sub-step
        joints, speeds = state.joints, state.speeds
        for _ in range(self.substeps):
            speeds = speeds + acc
            wanted = joints + speeds * c["h"]
            joints = torch.clamp(wanted, c["-pi"], c["pi"])
            speeds = torch.where(joints == wanted, speeds, c["0"])  # stopped at the limit
        xy = self._xy(joints)
        illegal = self._violations(xy, state.tip).any(1)
        running = ~state.stopped & (state.t < c["horizon"])
        move = running & ~illegal
        keep = move[:, None]
        return ArmState(
            joints=torch.where(keep, joints, state.joints),
            speeds=torch.where(keep, speeds, state.speeds),
            tip=torch.where(keep, xy[:, :, -1], state.tip),
            stopped=state.stopped | (running & illegal),
            t=state.t + c["1_long"],
        )

    def observe(self, state: ArmState) -> torch.Tensor:
        """Joint angles / pi, ``[B, 20]`` in [-1, 1]."""
        return state.joints * self._tables(state.joints.device)["1/pi"]

    def _goal_distances(self, state: ArmState) -> tuple[torch.Tensor, torch.Tensor]:
        goals = self._tables(state.tip.device)["goals"]
        delta = state.tip[:, None] - goals[None, :, :2]
        return torch.hypot(delta[..., 0], delta[..., 1]), goals[:, 2]

    def reward(self, state: ArmState) -> torch.Tensor:
        """(r - d) / r of the end effector inside a goal, 0 elsewhere; only at the horizon
        (rows that stopped early are rewarded on their frozen pose)."""
        dist, radius = self._goal_distances(state)
        return goal_reward(dist, radius, state.t >= self.spec.episode_length)

    def reward_area(self, state: ArmState) -> torch.Tensor:
        """Index of the goal containing the end effector (-1 outside every goal)."""
        return goal_area(*self._goal_distances(state))

    def descriptor(self, state: ArmState) -> torch.Tensor:
        """End effector (x, y), ``[B, 2]`` in [0, 1]."""
        return state.tip.clone()

    def done(self, state: ArmState) -> torch.Tensor:
        """Stopped by an illegal move, or at the horizon."""
        return state.stopped | (state.t >= self.spec.episode_length)

    def goal_circles(self) -> list[tuple[float, float, float]]:
        """Goals as (x, y, radius) in descriptor units, for plots."""
        return list(GOALS)

    @staticmethod
    def _wall_mask(size: int, device=None) -> torch.Tensor:
        """``[size, size]`` bool, pixels within about a pixel of a wall bar; row 0 is y = 0."""
        centres = (torch.arange(size, dtype=torch.float32, device=device) + 0.5) / size
        gx, gy = centres[None, :], centres[:, None]
        mask = torch.zeros(size, size, dtype=torch.bool, device=device)
        half = max(0.006, 0.75 / size)
        for (x0, y0), (x1, y1) in WALLS:
            inside_x = (gx >= min(x0, x1) - half) & (gx <= max(x0, x1) + half)
            inside_y = (gy >= min(y0, y1) - half) & (gy <= max(y0, y1) + half)
            mask |= inside_x & inside_y
        return mask

    def background(self, size: int = 200) -> np.ndarray:
        """RGB ``[size, size, 3]`` uint8 of the unit square with the wall bars (dark), covering
        the descriptor bounds; row 0 is y = 0 (plots draw it with ``origin="lower"``)."""
        grey = np.where(self._wall_mask(size).numpy(), WALL_GREY, FLOOR_GREY).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)

    def render(self, state: ArmState) -> torch.Tensor:
        """Top-down ``[B, 64, 64, 3]`` uint8: floor, walls (dark), arm (blue), end effector
        (red); y up (image row 0 is the top of the square)."""
        size = self.spec.image_size
        device = state.joints.device
        batch = state.joints.shape[0]
        centres = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size
        gx = centres[None, None, :]
        gy = centres.flip(0)[None, :, None]
        walls = self._wall_mask(size, device).flip(0)
        img = torch.full((batch, size, size, 3), FLOOR_GREY, dtype=torch.uint8, device=device)
        img[:, walls] = WALL_GREY
        points = self.points(state.joints)
        width2 = max(0.01, 0.75 / size) ** 2
        arm = torch.zeros(batch, size, size, dtype=torch.bool, device=device)
        for k in range(N_JOINTS):  # loop over links, not individuals
            sx, sy = points[:, k, 0, None, None], points[:, k, 1, None, None]
            dx = points[:, k + 1, 0, None, None] - sx
            dy = points[:, k + 1, 1, None, None] - sy
            along = (((gx - sx) * dx + (gy - sy) * dy) / (dx * dx + dy * dy)).clamp(0, 1)
            arm |= (gx - sx - along * dx) ** 2 + (gy - sy - along * dy) ** 2 <= width2
        tip_d2 = (gx - state.tip[:, 0, None, None]) ** 2 + (gy - state.tip[:, 1, None, None]) ** 2
        img[arm] = torch.tensor(ARM_COLOUR, dtype=torch.uint8, device=device)
        img[tip_d2 <= (1.5 / size) ** 2] = torch.tensor(
            TIP_COLOUR, dtype=torch.uint8, device=device
        )
        return img
