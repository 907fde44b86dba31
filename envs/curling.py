"""Curling (SERENE, STAX): a 2-link arm pushes a ball on a 3 x 3 m table, as a batched simulator.

The original is a Box2D scene (the authors' ``gym_billiard``); Box2D's contact solver cannot be
reproduced exactly, so this is an approximation that keeps the behaviours that matter (tested
in ``tests/test_curling.py``), on the original's geometry:

* The arm is kinematic: the two actions (clipped to [-1, 1]) are the joint speeds in rad/s,
  integrated with dt = 1/60 and stopped at the joint limits (joint0 +-0.4 pi, joint1
  +-0.9 pi). Box2D drives the joints with motors; a motor strong enough to ignore the ball is
  what the papers' arm behaves like.
* Links: boxes 1 long and 0.1 thick; the elbow is 1 from the base and link 1's box starts 0.1
  behind it (the original overlaps the links to build the joint), so the tip is 1.9 from the
  base when the arm is straight.
* The ball (radius 0.15) moves freely with linear damping 1.1 applied as Box2D does
  (``v *= 1 / (1 + dt * damping)``), no gravity (top-down view).
* Ball-arm contact: when the ball overlaps a link box it is pushed out along the contact
  normal, its normal velocity relative to the link's contact point is reflected with
  restitution 0.9 if it approached faster than 1 m/s and cancelled otherwise (Box2D's
  restitution threshold: a slow push carries the ball instead of bouncing it), and Coulomb
  friction (0.9) reduces the tangential relative velocity by at most friction x normal
  impulse.
* Ball-wall contact: the walls are 0.1-thick boxes centred on the table edges, inner faces at
  +-1.45, so the ball's centre stays in [-1.30, 1.30]^2; they reflect the normal velocity with
  restitution 0.9 above 1 m/s and stop it below (wall friction is ignored).
* Each step is split into ``substeps`` (2) so that fast pushes do not tunnel through the ball.

Before issue 17 the links were 0.05-thick capsules with the tip at 2.0, the walls' faces at
+-1.5 and every contact bounced.

The table, the arm and the contacts are in :mod:`envs.table` (shared with :mod:`envs.billiard`).

Observation (6): ball x, y, joint angles, joint speeds. Reward at the last step: (r - d) / r
inside a goal ((0.8, 0.8) r 0.4; (0.8, -0.8) r 0.2). Descriptor: final ball (x, y), bounds
[-1.35, 1.35]^2, 50 x 50 grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from envs.base import goal_area, goal_reward
from envs.table import (
    BALL_START,
    DAMPING,
    DT,
    HALF,
    LIMITS,
    LINK,
    THICKNESS,
    arm_contacts,
    arm_points,
    constant,
    link_boxes,
    move_joints,
    table_spec,
    wall_contacts,
)

BALL_RADIUS = 0.15
ELASTICITY = 0.9
GOALS = ((0.8, 0.8, 0.4), (0.8, -0.8, 0.2))


@dataclass
class CurlingState:
    """Batched state: ball position/velocity ``[B, 2]``, joint angles/speeds ``[B, 2]``."""

    pos: torch.Tensor
    vel: torch.Tensor
    joints: torch.Tensor
    speeds: torch.Tensor
    t: torch.Tensor


class Curling:
    """Batched Curling.

    Args:
        episode_length: steps per episode (500).
        substeps: physics sub-steps per step.
    """

    def __init__(self, *, episode_length: int = 500, substeps: int = 2) -> None:
        if episode_length <= 0 or substeps <= 0:
            raise ValueError("episode_length and substeps must be > 0")
        self.substeps = int(substeps)
        self.spec = table_spec(
            "curling",
            episode_length=episode_length,
            reward_areas=len(GOALS),
            options={"episode_length": int(episode_length), "substeps": self.substeps},
        )

    # -- kinematics ----------------------------------------------------------------------------
    arm_points = staticmethod(arm_points)

    # -- protocol ------------------------------------------------------------------------------
    def reset(self, batch_size: int, *, device="cpu", generator=None) -> CurlingState:
        """Ball at (-0.5, 0.2) at rest, arm straight along +y."""
        device = torch.device(device)
        zeros = torch.zeros(batch_size, 2, device=device)
        pos = torch.tensor(BALL_START, device=device).repeat(batch_size, 1)
        return CurlingState(
            pos,
            zeros.clone(),
            zeros.clone(),
            zeros.clone(),
            torch.zeros((), dtype=torch.long, device=device),
        )

    def step(self, state: CurlingState, actions: torch.Tensor) -> CurlingState:
        speeds = actions.clamp(-1.0, 1.0)
        limits = constant(LIMITS, device=actions.device)
        pos, vel, joints = state.pos, state.vel, state.joints
        h = DT / self.substeps
        for _ in range(self.substeps):
            joints, moving = move_joints(joints, speeds, h, limits)
            vel = vel / (1.0 + h * DAMPING)
            pos = pos + vel * h
            pos, vel = arm_contacts(
                pos, vel, joints, moving, radius=BALL_RADIUS, elasticity=ELASTICITY
            )
            pos, vel = wall_contacts(pos, vel, radius=BALL_RADIUS, elasticity=ELASTICITY)
        return CurlingState(pos, vel, joints, moving, state.t + 1)

    def observe(self, state: CurlingState) -> torch.Tensor:
        return torch.cat([state.pos, state.joints, state.speeds], 1)

    def _goal_distances(self, state: CurlingState):
        goals = constant(GOALS, device=state.pos.device)
        dist = torch.linalg.vector_norm(state.pos[:, None] - goals[None, :, :2], dim=-1)
        return dist, goals[:, 2]

    def reward(self, state: CurlingState) -> torch.Tensor:
        dist, radius = self._goal_distances(state)
        return goal_reward(dist, radius, state.t >= self.spec.episode_length)

    def reward_area(self, state: CurlingState) -> torch.Tensor:
        return goal_area(*self._goal_distances(state))

    def descriptor(self, state: CurlingState) -> torch.Tensor:
        return state.pos.clone()

    def done(self, state: CurlingState) -> torch.Tensor:
        return (state.t >= self.spec.episode_length).expand(state.pos.shape[0])

    def goal_circles(self) -> list[tuple[float, float, float]]:
        """Goals as (x, y, radius) in descriptor units, for plots."""
        return list(GOALS)

    def background(self, size: int = 200) -> np.ndarray:
        """The table (light) with its walls, covering the descriptor bounds, for plots."""
        img = np.full((size, size, 3), 225, dtype=np.uint8)
        border = max(1, int(size * (HALF - 1.35) / 2.7 / 3))
        img[:border] = img[-border:] = img[:, :border] = img[:, -border:] = 120
        return img

    def render(self, state: CurlingState) -> torch.Tensor:
        """Top-down ``[B, 64, 64, 3]`` uint8: table, ball (red) and arm (blue), y up."""
        size = self.spec.image_size
        device = state.pos.device
        coords = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size * 2 * HALF
        coords = coords - HALF
        gx = coords[None, None, :]
        gy = coords.flip(0)[None, :, None]  # image row 0 is the top of the table
        img = torch.full((len(state.pos), size, size, 3), 225, dtype=torch.uint8, device=device)
        arm = torch.zeros(len(state.pos), size, size, dtype=torch.bool, device=device)
        for start, direction in link_boxes(state.joints):
            seg = direction * LINK
            sx, sy = start[:, 0, None, None], start[:, 1, None, None]
            dx, dy = seg[:, 0, None, None], seg[:, 1, None, None]
            along = (((gx - sx) * dx + (gy - sy) * dy) / (dx * dx + dy * dy)).clamp(0, 1)
            d2 = (gx - sx - along * dx) ** 2 + (gy - sy - along * dy) ** 2
            arm |= d2 <= (max(THICKNESS / 2, HALF / size)) ** 2
        ball = (gx - state.pos[:, 0, None, None]) ** 2 + (gy - state.pos[:, 1, None, None]) ** 2
        img[ball <= BALL_RADIUS**2] = torch.tensor([220, 30, 30], dtype=torch.uint8, device=device)
        img[arm] = torch.tensor([40, 60, 200], dtype=torch.uint8, device=device)
        return img
