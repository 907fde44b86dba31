"""Billiard (TAXONS): a 2-link arm pushes a ball into one of two corner holes, batched.

TAXONS (Paolo et al., ICRA 2020) used the authors' Box2D ``gym_billiard`` scene. It is the
scene of :mod:`envs.curling` (the same table, arm and physics approximation, shared through
:mod:`envs.table`) with these differences, tested in ``tests/test_billiard.py``:

* Ball radius 0.2 and elasticity 0.7 (our spec; the authors' parameter file of that time had
  radius 0.15, ball restitution 0.7, link restitution 0 and wall restitution 0.95). Box2D mixes
  restitutions with ``max``, so the original walls bounced with 0.95: ``wall_elasticity``
  (default: the same as ``elasticity``) gives that back. Friction 0.9, damping 1.1 (the
  ``gym_billiard`` copy in the TAXONS repository used Box2D ``linearDamping`` 1.0), a
  kinematic arm of 0.1-thick link boxes reaching 1.9 from the base, the walls' inner faces at
  +-1.45 (0.1-thick walls centred on the table edges), Box2D's restitution threshold (contacts
  approaching at 1 m/s or less do not bounce) and 2 sub-steps per step, all as in Curling
  (issue 17; before it the links were 0.05-thick capsules reaching 2.0, the walls' faces were
  at +-1.5 and every contact bounced).
* Start (as ``gym_billiard``'s non-random reset): ball at rest at (-0.5, 0.2), arm straight
  along +y from (0, -1.5), both joint angles and speeds 0. ``reset`` ignores its generator.
* Actions: 2 joint speeds in rad/s, clipped to [-1, 1] (``gym_billiard`` sets each joint's
  motor speed to the action with its magnitude capped at 1). Joint limits +-0.4 pi and
  +-0.9 pi.
* Holes: two circles of radius 0.4 centred on the top corners (-1.5, 1.5) and (1.5, 1.5). They
  are not simulated as bodies: as in ``gym_billiard``, after each step the ball "enters" a hole
  when its centre lies within the hole radius of the hole's centre (we test ``d < r``,
  :func:`envs.base.goal_area`; the original's ``d <= r`` differs only on the circle itself).
  A ball kept inside the walls can reach a hole only if ``hole_radius > sqrt(2) *
  (ball_radius + 0.05)`` (the ball's centre gets at most that close to a corner: 0.35 < 0.4).
* Termination: the step the ball enters a hole ends that row's episode (reward 100, the hole
  is recorded in ``state.hole``). Finished rows (in a hole, or past ``episode_length``) are
  frozen: later steps leave their ball, arm and hole unchanged, and ``done`` is true for them.
  Episodes last 300 steps (our spec and the standalone ``gym_billiard``'s ``MAX_ENV_STEPS``;
  the copy in the TAXONS repository had 500).
* Reward: ``reward(state)`` is 100 for a row whose ball has entered a hole and 0 otherwise.
  The entering step is the last step of that row's episode and the state is frozen after it,
  so ``reward`` of the final state is the episode return (``final_reward_only``); an evaluator
  that sums ``reward`` while ``done`` is false gets the same 100 once. ``reward_area``: index
  of the hole (0 left, 1 right), -1 if none.
* Observation (6), as ``gym_billiard``: ball x, y, joint angles, joint speeds (the speeds
  actually applied: 0 for a joint stopped at its limit).
* Descriptor: final ball (x, y), i.e. for a ball in a hole its position at the step it
  entered; bounds [-1.35, 1.35]^2, 50 x 50 grid (the ball's centre stays in [-1.25, 1.25]^2).
* Render: top-down ``[B, 64, 64, 3]`` uint8 of the whole table, y up: floor (light), a
  one-pixel wall border, holes (dark) and ball (red), and never the arm (TAXONS learns from
  ``gym_billiard`` images drawn without the arm). Colours are ours (the original drew a black
  floor, red holes and a blue ball) and the ball is drawn over a hole.

TAXONS drove the arm with a movement primitive (per joint, ``sum_i w_i cos(t)^i`` up to degree
5, a function of time only); here any policy of the observation works, e.g. the SERENE MLP.
Everything is batched over the population with no Python loop over individuals, and uses only
element-wise ops and reductions within a row, so a row's episode does not depend on the batch
it is run in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from envs.base import goal_area
from envs.table import (
    BALL_START,
    DAMPING,
    DT,
    HALF,
    LIMITS,
    WALL_FACE,
    arm_contacts,
    move_joints,
    sqrt_norm,
    table_spec,
    wall_contacts,
)

BALL_RADIUS = 0.2
ELASTICITY = 0.7
HOLE_RADIUS = 0.4
HOLES = ((-HALF, HALF), (HALF, HALF))
HOLE_REWARD = 100.0
EPISODE_LENGTH = 300

FLOOR_COLOUR = (225, 225, 225)
WALL_COLOUR = (120, 120, 120)
HOLE_COLOUR = (30, 30, 30)
BALL_COLOUR = (220, 30, 30)
WALL_WIDTH = 0.05  # drawn wall thickness inside the table (the original's half thickness)


@dataclass
class BilliardState:
    """Batched state.

    Attributes:
        pos: ``[B, 2]`` ball position.
        vel: ``[B, 2]`` ball velocity.
        joints: ``[B, 2]`` joint angles.
        speeds: ``[B, 2]`` joint speeds applied at the last step.
        hole: ``[B]`` long, the hole the ball entered (-1: none yet); such rows are frozen.
        t: 0-dim int64 step counter (shared by the batch).
    """

    pos: torch.Tensor
    vel: torch.Tensor
    joints: torch.Tensor
    speeds: torch.Tensor
    hole: torch.Tensor
    t: torch.Tensor


class Billiard:
    """Batched Billiard (see the module docstring).

    Args:
        episode_length: steps per episode (300).
        substeps: physics sub-steps per step of ``DT`` seconds.
        ball_radius: ball radius (0.2).
        elasticity: restitution of ball-arm contacts (0.7), and of the walls unless
            ``wall_elasticity`` is given.
        wall_elasticity: restitution of the walls (``None``: ``elasticity``; 0.95 is what
            Box2D's max-mixing gave in the original).
        damping: linear damping of the ball, Box2D style (1.1).
        hole_radius: radius of the two corner holes (0.4).
    """

    def __init__(
        self,
        *,
        episode_length: int = EPISODE_LENGTH,
        substeps: int = 2,
        ball_radius: float = BALL_RADIUS,
        elasticity: float = ELASTICITY,
        wall_elasticity: float | None = None,
        damping: float = DAMPING,
        hole_radius: float = HOLE_RADIUS,
    ) -> None:
        if episode_length <= 0 or substeps <= 0:
            raise ValueError("episode_length and substeps must be > 0")
        if not 0 < ball_radius < WALL_FACE:
            raise ValueError(f"ball_radius must be in (0, {WALL_FACE}), got {ball_radius}")
        if wall_elasticity is None:
            wall_elasticity = elasticity
        if not (0 <= elasticity <= 1 and 0 <= wall_elasticity <= 1):
            raise ValueError("elasticity and wall_elasticity must be in [0, 1]")
        if damping < 0 or hole_radius <= 0:
            raise ValueError("damping must be >= 0 and hole_radius > 0")
        self.substeps = int(substeps)
        self.ball_radius = float(ball_radius)
        self.elasticity = float(elasticity)
        self.wall_elasticity = float(wall_elasticity)
        self.damping = float(damping)
        self.hole_radius = float(hole_radius)
        self.spec = table_spec(
            "billiard",
            episode_length=episode_length,
            reward_areas=len(HOLES),
            final_reward_only=True,
            can_terminate=True,
            options={
                "episode_length": int(episode_length),
                "substeps": self.substeps,
                "ball_radius": self.ball_radius,
                "elasticity": self.elasticity,
                "wall_elasticity": self.wall_elasticity,
                "damping": self.damping,
                "hole_radius": self.hole_radius,
            },
        )
        self._device_tables: dict[torch.device, dict[str, torch.Tensor]] = {}

    def _tables(self, device: torch.device) -> dict[str, torch.Tensor]:
        """Constant tensors on ``device`` (built once, so that steps copy nothing from the
        host)."""
        device = torch.device(device)
        if device not in self._device_tables:
            self._device_tables[device] = {
                "limits": torch.tensor(LIMITS, dtype=torch.float32, device=device),
                "holes": torch.tensor(HOLES, dtype=torch.float32, device=device),
                "hole_radius": torch.full((len(HOLES),), self.hole_radius, device=device),
                "start": torch.tensor(BALL_START, dtype=torch.float32, device=device),
                "horizon": torch.tensor(self.spec.episode_length, device=device),
                "one": torch.ones((), dtype=torch.int64, device=device),
                "reward": torch.tensor(HOLE_REWARD, dtype=torch.float32, device=device),
            }
        return self._device_tables[device]

    # -- protocol ------------------------------------------------------------------------------
    def make_state(
        self,
        pos: torch.Tensor,
        vel: torch.Tensor | None = None,
        joints: torch.Tensor | None = None,
        t: int = 0,
    ) -> BilliardState:
        """A running state (no hole yet, arm at rest) from ball positions ``[B, 2]``, e.g. for
        tests and replays."""
        pos = pos.to(torch.float32)
        zeros = torch.zeros_like(pos)
        return BilliardState(
            pos=pos,
            vel=zeros.clone() if vel is None else vel.to(pos),
            joints=zeros.clone() if joints is None else joints.to(pos),
            speeds=zeros.clone(),
            hole=torch.full((pos.shape[0],), -1, dtype=torch.int64, device=pos.device),
            t=torch.tensor(t, dtype=torch.int64, device=pos.device),
        )

    def reset(self, batch_size: int, *, device="cpu", generator=None) -> BilliardState:
        """Ball at rest at (-0.5, 0.2), arm straight along +y (deterministic)."""
        start = self._tables(torch.device(device))["start"]
        return self.make_state(start.expand(batch_size, 2).clone())

    def step(self, state: BilliardState, actions: torch.Tensor) -> BilliardState:
        """Move the arm, the ball and its contacts; a ball ending the step in a hole ends its
        episode, and finished rows keep their state."""
        c = self._tables(state.pos.device)
        speeds = actions.clamp(-1.0, 1.0)
        limits = c["limits"]
        pos, vel, joints = state.pos, state.vel, state.joints
        moving = speeds
        h = DT / self.substeps
        slow = 1.0 / (1.0 + h * self.damping)
        for _ in range(self.substeps):
            joints, moving = move_joints(joints, speeds, h, limits)
            vel = vel * slow
            pos = pos + vel * h
            pos, vel = arm_contacts(
                pos,
                vel,
                joints,
                moving,
                radius=self.ball_radius,
                elasticity=self.elasticity,
                norm=sqrt_norm,
            )
            pos, vel = wall_contacts(
                pos, vel, radius=self.ball_radius, elasticity=self.wall_elasticity
            )
        running = (state.hole < 0) & (state.t < c["horizon"])
        keep = running[:, None]
        pos = torch.where(keep, pos, state.pos)
        entered = goal_area(self._hole_distances(pos), c["hole_radius"])
        return BilliardState(
            pos=pos,
            vel=torch.where(keep, vel, state.vel),
            joints=torch.where(keep, joints, state.joints),
            speeds=torch.where(keep, moving, state.speeds),
            hole=torch.where(running & (entered >= 0), entered, state.hole),
            t=state.t + c["one"],
        )

    def _hole_distances(self, pos: torch.Tensor) -> torch.Tensor:
        """Distance ``[B, 2]`` from the ball to each hole centre."""
        delta = pos[:, None, :] - self._tables(pos.device)["holes"][None]
        return torch.sqrt(delta[..., 0] * delta[..., 0] + delta[..., 1] * delta[..., 1])

    def observe(self, state: BilliardState) -> torch.Tensor:
        """Ball x, y, joint angles, joint speeds: ``[B, 6]``."""
        return torch.cat([state.pos, state.joints, state.speeds], 1)

    def reward(self, state: BilliardState) -> torch.Tensor:
        """100 for a ball that entered a hole (its episode's last step), else 0."""
        reward = self._tables(state.pos.device)["reward"]
        return torch.where(state.hole >= 0, reward, torch.zeros_like(reward))

    def reward_area(self, state: BilliardState) -> torch.Tensor:
        """Index of the hole the ball entered (0: left, 1: right), -1 if none."""
        return state.hole.clone()

    def descriptor(self, state: BilliardState) -> torch.Tensor:
        """Ball (x, y): final, or where it entered a hole."""
        return state.pos.clone()

    def done(self, state: BilliardState) -> torch.Tensor:
        """In a hole, or at the horizon."""
        return (state.hole >= 0) | (state.t >= self.spec.episode_length)

    def goal_circles(self) -> list[tuple[float, float, float]]:
        """Holes as (x, y, radius) in descriptor units, for plots."""
        return [(x, y, self.hole_radius) for x, y in HOLES]

    # -- pictures ------------------------------------------------------------------------------
    def _table(self, xs: torch.Tensor, ys: torch.Tensor, pixel: float) -> torch.Tensor:
        """``[H, W, 3]`` uint8 floor, walls and holes at pixel centres ``ys [H, 1]`` x
        ``xs [1, W]`` of side ``pixel`` (walls are drawn over holes, as the original did)."""
        device = xs.device
        holes = torch.zeros(ys.shape[0], xs.shape[1], dtype=torch.bool, device=device)
        for hx, hy in HOLES:  # two holes, not the batch
            holes |= (xs - hx) ** 2 + (ys - hy) ** 2 <= self.hole_radius**2
        inner = HALF - max(WALL_WIDTH, pixel / 2)
        walls = (xs.abs() > inner) | (ys.abs() > inner)
        img = torch.empty(ys.shape[0], xs.shape[1], 3, dtype=torch.uint8, device=device)
        img[:] = torch.tensor(FLOOR_COLOUR, dtype=torch.uint8, device=device)
        img[holes] = torch.tensor(HOLE_COLOUR, dtype=torch.uint8, device=device)
        img[walls] = torch.tensor(WALL_COLOUR, dtype=torch.uint8, device=device)
        return img

    def background(self, size: int = 200) -> np.ndarray:
        """RGB ``[size, size, 3]`` uint8 of the descriptor bounds (floor and holes), row 0 at
        y = -1.35 (plots draw it with ``origin="lower"``)."""
        low, high = self.spec.descriptor_low[0], self.spec.descriptor_high[0]
        centres = low + (torch.arange(size, dtype=torch.float32) + 0.5) * (high - low) / size
        return self._table(centres[None, :], centres[:, None], (high - low) / size).numpy()

    def render(self, state: BilliardState) -> torch.Tensor:
        """Top-down ``[B, 64, 64, 3]`` uint8 of the table: floor, walls, holes and ball (the arm
        is never drawn); y up (image row 0 is the top of the table)."""
        c = self._tables(state.pos.device)
        if "table" not in c:  # built once per device
            size = self.spec.image_size
            coords = (torch.arange(size, device=state.pos.device, dtype=torch.float32) + 0.5) * (
                2 * HALF / size
            ) - HALF
            c["coords"] = coords
            c["table"] = self._table(coords[None, :], coords.flip(0)[:, None], 2 * HALF / size)
            c["ball_colour"] = torch.tensor(BALL_COLOUR, dtype=torch.uint8, device=coords.device)
        coords = c["coords"]
        gx = coords[None, None, :]
        gy = coords.flip(0)[None, :, None]
        d2 = (gx - state.pos[:, 0, None, None]) ** 2 + (gy - state.pos[:, 1, None, None]) ** 2
        radius = max(self.ball_radius, 1.5 * HALF / self.spec.image_size)
        ball = (d2 <= radius * radius)[..., None]
        return torch.where(ball, c["ball_colour"], c["table"][None])
