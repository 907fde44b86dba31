"""Redundant arm (SERENE, STAX; Loviken's planar arm): a 20-joint arm in the unit square.

Rebuilt from the authors' environment (``gym_redarm``, class ``ArmEnv`` in GPaolo/SERENE,
``environments/assets/gym_redarm/envs/arm_env.py``; issue 17). Facts taken from it, tested
against a scalar transcription of its rules in ``tests/test_redundant_arm.py``:

* Kinematics: 20 links of length 0.05 (total length 1), base at (0.5, 0.5). Joint ``i`` is the
  angle of link ``i`` relative to link ``i - 1``; link 0's direction is ``pi/2 + joint 0``
  (joint 0 = 0 points up, +y), counter-clockwise positive. The 21 joint points are the base and
  the cumulative sums of the links; the last one is the end effector.
* Start posture: joint angles ``linspace(4 pi/20, pi/20, 20)`` (a spiral turning 2.5 pi), at
  rest; the end effector starts at (0.30647, 0.69174).
* Walls (the original's ``wall_setting = 8``, the "cross"): four 0.02 x 0.2 rectangles touching
  the border at the middle of each side, ``WALLS`` as (x, y, width, height).
* Dynamics: the 20 actions are joint accelerations (rad/s^2, clipped to [-1, 1]). A step is
  ``substeps`` (2) updates of ``DT = 0.01`` s each: ``angle' = a/2 dt^2 + speed dt + angle``,
  then ``speed' = speed + a dt/2`` (the original computes ``(angle' - angle)/dt``, the same
  value in exact arithmetic; written this way float32 does not lose the speed to
  cancellation). No angle clamp.
* Legality, checked before each update is applied; an illegal update is rejected (the arm
  keeps the pose and speeds of its last legal update, so a step whose second update is illegal
  keeps its first) and the episode ends (``done``; the row stays frozen afterwards). An update
  is illegal when
  - ``|tip' - tip| / substeps + speed[19] > max_update_speed`` (1): the original's "too fast"
    rule, the end effector's displacement plus the last joint's signed speed *before* the
    update (so in practice it caps the last joint's speed near 1 rad/s);
  - a joint point (the base included) has x or y outside [0, 1);
  - a joint point lies strictly inside a wall rectangle (only the points are tested: a link
    may cut a wall corner between two points, as in the original);
  - two joint points are closer than ``0.95 * 0.05`` in L1 distance (the original sorts the
    points by x and stops scanning at an x gap above the threshold, which finds exactly the
    pairs below it; consecutive points are 0.05 apart and never count).
* Horizon: ``episode_length`` 250 steps, the original's ``max_Steps``. The authors' evaluators
  stopped the loop earlier: STAX after 100 steps, SERENE after 101 (its loop steps once more
  before testing ``t >= max_steps = 100``). ``evaluator_cut=100`` reproduces STAX's run: the
  episode is then 100 steps long and, as there, only rows that ended early on an illegal move
  are rewarded (the env gives its reward when it is done, which a row still moving at the cut
  never is).
* Reward, at the end of the episode (``t >= spec.episode_length``): ``(r - d) / r`` of the end
  effector for the goal it lies in (goals (0.25, 0.25), (0.85, 0.85), (0.25, 0.90), radius
  0.05), 0 elsewhere. A row that stopped early is rewarded on its frozen pose (the original
  rewards it at the stopping step, the same number, given once either way).

Observation (20): joint angles / pi (the original's ``2 q - 1``), not clipped: a joint turned
past +-pi reports a value beyond +-1, as in the original. Descriptor: end effector (x, y),
bounds [0, 1]^2, 50 x 50 grid. ``reward_area``: index of the goal containing the end effector,
-1 if none. Everything is batched over the population (a loop over the 2 updates only) and
batch-invariant on the CPU (elementwise ops and a cumulative sum along the joints).

Differences from the original: float32 instead of float64 (positions agree to ~1e-6); actions
are clipped to [-1, 1] (the original applies any value, its controllers output (-1, 1));
``reward_area`` uses ``d < r`` (the original ``d <= r``, which only differs on the circle,
where the reward is 0).
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
START_HEADING = math.pi / 2  # direction of link 0 when joint 0 is 0
WALLS = (  # (x, y, width, height): the original's wall_setting 8, "cross"
    (0.49, 0.0, 0.02, 0.2),  # south
    (0.49, 0.8, 0.02, 0.2),  # north
    (0.0, 0.49, 0.2, 0.02),  # west
    (0.8, 0.49, 0.2, 0.02),  # east
)
GOALS = ((0.25, 0.25, 0.05), (0.85, 0.85, 0.05), (0.25, 0.90, 0.05))
DT = 0.01
SUBSTEPS = 2
MAX_UPDATE_SPEED = 1.0
SELF_DISTANCE = 0.95 * LINK  # L1 distance below which two joint points collide
EPISODE_LENGTH = 250
STAX_CUT = 100  # the STAX evaluator's loop length (SERENE's ran 101 steps)

ARM_COLOUR = (40, 60, 200)
TIP_COLOUR = (220, 30, 30)
WALL_GREY = 60
FLOOR_GREY = 225


def start_joints() -> list[float]:
    """The start posture: ``linspace(4 pi/20, pi/20, 20)``."""
    first, last = 4 * math.pi / N_JOINTS, math.pi / N_JOINTS
    return [first + (last - first) * i / (N_JOINTS - 1) for i in range(N_JOINTS)]


@dataclass
class ArmState:
    """Batched state.

    Attributes:
        joints: ``[B, 20]`` relative joint angles (rad, not wrapped).
        speeds: ``[B, 20]`` joint speeds (rad/s).
        tip: ``[B, 2]`` end effector position.
        stopped: ``[B]`` bool, an illegal update ended the episode (the state is frozen).
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
        episode_length: the env's own horizon, where it ends and rewards every episode (250).
        evaluator_cut: stop the episodes after this many steps, before the horizon, rewarding
            only rows that already ended on an illegal move (``STAX_CUT = 100``: STAX's
            evaluator); ``None``: run to ``episode_length``.
        substeps: updates of ``DT`` seconds per step (the original's ``update_steps``, 2; it
            also divides the end-effector displacement in the speed rule).
        max_update_speed: the speed rule's threshold (the original's ``max_update_speed``, 1).
    """

    def __init__(
        self,
        *,
        episode_length: int = EPISODE_LENGTH,
        evaluator_cut: int | None = None,
        substeps: int = SUBSTEPS,
        max_update_speed: float = MAX_UPDATE_SPEED,
    ) -> None:
        if episode_length <= 0 or substeps <= 0:
            raise ValueError("episode_length and substeps must be > 0")
        if evaluator_cut is not None and evaluator_cut <= 0:
            raise ValueError("evaluator_cut must be > 0 (or None)")
        if max_update_speed <= 0:
            raise ValueError("max_update_speed must be > 0")
        self.max_steps = int(episode_length)
        self.evaluator_cut = None if evaluator_cut is None else int(evaluator_cut)
        self.substeps = int(substeps)
        self.max_update_speed = float(max_update_speed)
        length = self.max_steps if evaluator_cut is None else min(self.max_steps, evaluator_cut)
        self.spec = EnvSpec(
            name="redundant-arm",
            obs_size=N_JOINTS,
            action_size=N_JOINTS,
            episode_length=length,
            descriptor_size=2,
            descriptor_low=(0.0, 0.0),
            descriptor_high=(1.0, 1.0),
            grid_shape=(50, 50),
            reward_areas=len(GOALS),
            final_reward_only=True,
            can_terminate=True,
            options={
                "episode_length": self.max_steps,
                "evaluator_cut": self.evaluator_cut,
                "substeps": self.substeps,
                "max_update_speed": self.max_update_speed,
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
            walls = torch.tensor(WALLS, dtype=torch.float32, device=device)
            i, j = torch.triu_indices(N_JOINTS + 1, N_JOINTS + 1, offset=1)
            self._device_tables[device] = {
                "0": one(0.0),
                "1": one(1.0),
                "-1": one(-1.0),
                "1/pi": one(1.0 / math.pi),
                "link": one(LINK),
                "heading": one(START_HEADING),
                "phase": torch.tensor([[0.0], [math.pi / 2]], device=device),
                "dt": one(DT),
                "dt/2": one(DT / 2),
                "dt^2/2": one(DT * DT / 2),
                "1/substeps": one(1.0 / self.substeps),
                "max_speed": one(self.max_update_speed),
                "self_distance": one(SELF_DISTANCE),
                "1_long": torch.ones((), dtype=torch.int64, device=device),
                "horizon": torch.tensor(self.spec.episode_length, device=device),
                "max_steps": torch.tensor(self.max_steps, device=device),
                "base": torch.tensor(BASE, dtype=torch.float32, device=device),
                # wall rectangles as [4] tensors of x0, x1, y0, y1
                "wx0": walls[:, 0],
                "wx1": walls[:, 0] + walls[:, 2],
                "wy0": walls[:, 1],
                "wy1": walls[:, 1] + walls[:, 3],
                "goals": torch.tensor(GOALS, dtype=torch.float32, device=device),
                "start": torch.tensor(start_joints(), dtype=torch.float32, device=device),
                "pair_i": i.to(device),
                "pair_j": j.to(device),
            }
        return self._device_tables[device]

    # -- kinematics ----------------------------------------------------------------------------
    def _xy(self, joints: torch.Tensor) -> torch.Tensor:
        """Joint points as ``[B, 2, 21]`` (x row, y row): the base, then the end of every link."""
        c = self._tables(joints.device)
        angles = torch.cumsum(joints, 1) + c["heading"]
        # cos(a - pi/2) = sin(a): one call gives both components of every link
        links = torch.cos(angles[:, None, :] - c["phase"]) * c["link"]  # [B, 2, 20]
        start = c["base"][:, None].expand(joints.shape[0], 2, 1)
        return torch.cat([start, start + torch.cumsum(links, 2)], 2)

    def points(self, joints: torch.Tensor) -> torch.Tensor:
        """Joint points ``[B, 21, 2]``: the base, then the end of every link (the last one is
        the end effector)."""
        return self._xy(joints).transpose(1, 2)

    def violations(
        self, points: torch.Tensor, previous_tip: torch.Tensor, last_speed: torch.Tensor
    ) -> torch.Tensor:
        """Which rules the update to ``points [B, 21, 2]`` breaks, ``[B, 4]`` bool: too fast,
        outside the arena, in a wall, self-collision (see :meth:`_violations`)."""
        return self._violations(points.transpose(1, 2), previous_tip, last_speed)

    def _violations(
        self, xy: torch.Tensor, previous_tip: torch.Tensor, last_speed: torch.Tensor
    ) -> torch.Tensor:
        """Rules broken by the update to the pose ``xy [B, 2, 21]`` from a pose whose end
        effector is ``previous_tip [B, 2]`` and whose last joint turns at ``last_speed [B]``."""
        c = self._tables(xy.device)
        px, py = xy[:, 0], xy[:, 1]  # [B, 21]
        mx, my = px[:, -1] - previous_tip[:, 0], py[:, -1] - previous_tip[:, 1]
        moved = torch.sqrt(mx * mx + my * my)
        too_fast = moved * c["1/substeps"] + last_speed > c["max_speed"]
        outside = ((xy < c["0"]) | (xy >= c["1"])).flatten(1).any(1)
        in_x = (px[..., None] > c["wx0"]) & (px[..., None] < c["wx1"])  # [B, 21, 4]
        in_y = (py[..., None] > c["wy0"]) & (py[..., None] < c["wy1"])
        wall = (in_x & in_y).flatten(1).any(1)
        i, j = c["pair_i"], c["pair_j"]
        l1 = (px.index_select(1, i) - px.index_select(1, j)).abs() + (
            py.index_select(1, i) - py.index_select(1, j)
        ).abs()
        crossing = (l1 < c["self_distance"]).any(1)
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
        """Every arm at rest in the start spiral (the env is deterministic)."""
        start = self._tables(torch.device(device))["start"]
        return self.make_state(start.expand(batch_size, N_JOINTS).clone())

    def step(self, state: ArmState, actions: torch.Tensor) -> ArmState:
        """``substeps`` updates; an illegal update is rejected and stops the row, finished rows
        keep their state."""
        c = self._tables(state.joints.device)
        acc = torch.clamp(actions, c["-1"], c["1"])
        shift = acc * c["dt^2/2"]  # angle change of the acceleration over one update
        kick = acc * c["dt/2"]  # speed change per update
        joints, speeds, tip, stopped = state.joints, state.speeds, state.tip, state.stopped
        alive = ~stopped & (state.t < c["horizon"])
        for _ in range(self.substeps):
            wanted = shift + speeds * c["dt"] + joints  # the original's order of the terms
            xy = self._xy(wanted)
            illegal = self._violations(xy, tip, speeds[:, -1]).any(1)
            stopped = stopped | (alive & illegal)
            alive = alive & ~illegal
            keep = alive[:, None]
            joints = torch.where(keep, wanted, joints)
            speeds = torch.where(keep, speeds + kick, speeds)
            tip = torch.where(keep, xy[:, :, -1], tip)
        return ArmState(
            joints=joints, speeds=speeds, tip=tip, stopped=stopped, t=state.t + c["1_long"]
        )

    def observe(self, state: ArmState) -> torch.Tensor:
        """Joint angles / pi, ``[B, 20]`` (not clipped)."""
        return state.joints * self._tables(state.joints.device)["1/pi"]

    def _goal_distances(self, state: ArmState) -> tuple[torch.Tensor, torch.Tensor]:
        goals = self._tables(state.tip.device)["goals"]
        delta = state.tip[:, None] - goals[None, :, :2]
        return torch.hypot(delta[..., 0], delta[..., 1]), goals[:, 2]

    def reward(self, state: ArmState) -> torch.Tensor:
        """(r - d) / r of the end effector inside a goal, 0 elsewhere; only at the end of the
        episode, and with ``evaluator_cut`` only for rows that stopped on an illegal update
        (rows that stopped early are rewarded on their frozen pose)."""
        c = self._tables(state.tip.device)
        dist, radius = self._goal_distances(state)
        ended = state.stopped | (state.t >= c["max_steps"])  # the env's own done
        return goal_reward(dist, radius, (state.t >= c["horizon"]) & ended)

    def reward_area(self, state: ArmState) -> torch.Tensor:
        """Index of the goal containing the end effector (-1 outside every goal)."""
        return goal_area(*self._goal_distances(state))

    def descriptor(self, state: ArmState) -> torch.Tensor:
        """End effector (x, y), ``[B, 2]`` in [0, 1]."""
        return state.tip.clone()

    def done(self, state: ArmState) -> torch.Tensor:
        """Stopped by an illegal update, or at the end of the episode."""
        return state.stopped | (state.t >= self.spec.episode_length)

    def goal_circles(self) -> list[tuple[float, float, float]]:
        """Goals as (x, y, radius) in descriptor units, for plots."""
        return list(GOALS)

    @staticmethod
    def _wall_mask(size: int, device=None) -> torch.Tensor:
        """``[size, size]`` bool, pixels overlapping a wall rectangle; row 0 is y = 0."""
        centres = (torch.arange(size, dtype=torch.float32, device=device) + 0.5) / size
        gx, gy = centres[None, :], centres[:, None]
        mask = torch.zeros(size, size, dtype=torch.bool, device=device)
        half = 0.5 / size
        for x, y, w, h in WALLS:
            inside_x = (gx > x - half) & (gx < x + w + half)
            inside_y = (gy > y - half) & (gy < y + h + half)
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
