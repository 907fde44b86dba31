"""Point trap (DvD "point-v0"): a point mass pushed towards (25, 0) past a U-shaped wall.

The original (Parker-Holder et al. 2020, ``simpleenvs/point.py`` and ``assets/point.xml`` in
the authors' DvD_ES code) is a MuJoCo model; this is a batched torch re-implementation that keeps
its geometry, constants and rewards and replaces MuJoCo's soft contacts by exact, swept ones.

From the original:

* Body: a sphere of radius 0.5 with a heading marker (an "arrow" box 1 x 0.2 whose centre is
  0.9 ahead of the body's centre, so it spans 0.4 to 1.4 ahead, half-width 0.1), density 100:
  mass ``MASS`` = 56.36. Three joints: x and y slides and a free heading hinge.
* Actions (2), clipped to [-1, 1], are forces on the x and y slides with gear 2000, so an
  action of 1 accelerates the body by ``ACCELERATION`` = 2000 / 56.36 = 35.49 units/s^2. There
  is no damping, gravity has no effect (no vertical joint), the heading is not actuated.
* Time: MuJoCo steps of 0.02 s (RK4, exact for a constant force), two per env step (``DT`` =
  0.04 s); ``episode_length`` 50 steps (gym's ``max_episode_steps``), never terminating early.
* Walls (``WALLS``, axis-aligned boxes as (x0, y0, x1, y1)): two arms [12, 14] x [+-1.7, +-2.3]
  and a back wall [13.7, 14.3] x [-2, 2], a U open towards the start at the origin.
* Reward per step: ``-||(25, 0) - (x, y)||`` after the step (the episode return is the sum).
* Observation (6): ``(x, y, heading, vx, vy, heading rate)`` (MuJoCo's qpos then qvel).

Our choices, where MuJoCo's behaviour is not reproduced exactly:

* Point-mass dynamics: the body translates freely (exact constant-acceleration integration
  of each sub-step). MuJoCo's model also couples the heading to y pushes (the arrow shifts the
  centre of mass 0.064 ahead of the joints) and its zero-depth floor contact adds a drag whose
  effect depends on the MuJoCo version; neither is modelled. The heading only turns at its
  initial rate (no contact torques), so it stays 0 unless ``reset_noise`` > 0.
* Contacts: the collision shape is the disc of radius 0.5 plus, with ``arrow=True``, the arrow
  box kept pointing along +x (the initial heading; the heading variable does not turn it).
  Each sub-step moves the centre along a straight segment (the chord of its parabola, at most
  0.002 off it), swept against the configuration-space obstacles (walls grown by the disc:
  boxes and corner circles; walls grown by the arrow: boxes), so no speed can tunnel through a
  wall. A contact is frictionless and inelastic: the
  body stops at the wall (``SKIN`` = 1e-4 off it), loses its velocity into the wall and slides
  along it for the rest of the sub-step (up to ``CONTACT_ITERATIONS`` contacts per sub-step).
  MuJoCo's soft contacts bounce slightly and have friction 1. The walls and the swept contacts
  are in :mod:`envs.point_contacts`.
* Reset: every point at rest at the origin, heading 0 (the env is deterministic).
  ``reset_noise`` = s > 0 adds the original's perturbation (uniform in [-s, s] on x, y,
  heading; normal with std s on the three speeds; the original uses s = 0.1), drawn once from
  the evaluator's generator and shared by the whole batch, so that results stay independent of
  the batch size.
* Trap: pushing straight along +x stops the arrow at the back wall (centre at x = 12.3) after
  21 steps, for a return of -799.5 (MuJoCo 4 on the original model: -798.2, the soft contact
  bouncing a little); without the arrow the disc stops at x = 13.2, return -773.2. The
  authors' README calls -780 the local maximum. Going around the wall and stopping at the
  goal scores about -530 (-525 for the best 5-piece open-loop control a quick search found).
* Reward area (one): the disc of radius ``goal_radius`` (2) around (25, 0), which holds the
  original's 2 x 2 green goal marker.
* Descriptor: final (x, y). Its bounds, ``+-(ceil(ACCELERATION * T^2 / 2) + 1)`` with T the
  episode duration (+-72 for 50 steps), cover every reachable position; 50 x 50 grid.
* Render: 64 x 64 top-down view of x in [-6, 30], y in [-18, 18] (``VIEW``): floor, goal disc
  (green), walls (dark), body (red) and arrow (dark red); a point outside the view is not drawn.

Everything is batched over the population with elementwise tensor ops (no Python loop over
individuals, no reduction whose rounding depends on the batch size), so row ``i`` of a batch is
bit-identical to the same episode run alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from envs.base import EnvSpec, goal_area
from envs.point_contacts import (  # noqa: F401  (CONTACT_ITERATIONS re-exported)
    ARROW,
    BODY_RADIUS,
    CONTACT_ITERATIONS,
    SKIN,
    WALLS,
    SweptContacts,
    obstacles,
)

GOAL = (25.0, 0.0)
GOAL_RADIUS = 2.0
GEAR = 2000.0
MASS = 100.0 * (4.0 / 3.0 * math.pi * BODY_RADIUS**3 + 1.0 * 0.2 * 0.2)
ACCELERATION = GEAR / MASS
DT = 0.04
EPISODE_LENGTH = 50
VIEW = (-6.0, 30.0, -18.0, 18.0)  # x0, x1, y0, y1 of the render

FLOOR_GREY = 225
WALL_GREY = 60
GOAL_COLOUR = (150, 215, 150)
BODY_COLOUR = (220, 30, 30)
ARROW_COLOUR = (140, 20, 20)


@dataclass
class PointState:
    """Batched state.

    Attributes:
        pos: ``[B, 2]`` position (x, y).
        vel: ``[B, 2]`` velocity.
        heading: ``[B]`` heading angle (rad).
        spin: ``[B]`` heading rate (rad/s).
        t: 0-dim int64 step counter (shared by the batch).
    """

    pos: torch.Tensor
    vel: torch.Tensor
    heading: torch.Tensor
    spin: torch.Tensor
    t: torch.Tensor


class PointTrap(SweptContacts):
    """Batched DvD point trap (see the module docstring).

    Args:
        episode_length: steps per episode (50).
        substeps: swept-collision sub-steps per step of ``DT`` seconds (the original's 2).
        arrow: collide with the heading marker as well as the body disc.
        reset_noise: scale of the initial perturbation (0: every episode starts at rest at the
            origin; the original uses 0.1).
        goal_radius: radius of the reward area around (25, 0).
    """

    def __init__(
        self,
        *,
        episode_length: int = EPISODE_LENGTH,
        substeps: int = 2,
        arrow: bool = True,
        reset_noise: float = 0.0,
        goal_radius: float = GOAL_RADIUS,
    ) -> None:
        if episode_length <= 0 or substeps <= 0:
            raise ValueError("episode_length and substeps must be > 0")
        if reset_noise < 0 or goal_radius <= 0:
            raise ValueError("reset_noise must be >= 0 and goal_radius > 0")
        self.substeps = int(substeps)
        self.arrow = bool(arrow)
        self.reset_noise = float(reset_noise)
        self.goal_radius = float(goal_radius)
        duration = int(episode_length) * DT
        half = float(math.ceil(ACCELERATION * duration**2 / 2) + 1)
        self.spec = EnvSpec(
            name="point-trap",
            obs_size=6,
            action_size=2,
            episode_length=int(episode_length),
            descriptor_size=2,
            descriptor_low=(-half, -half),
            descriptor_high=(half, half),
            grid_shape=(50, 50),
            reward_areas=1,
            final_reward_only=False,
            can_terminate=False,
            random_reset=self.reset_noise > 0,
            options={
                "episode_length": int(episode_length),
                "substeps": self.substeps,
                "arrow": self.arrow,
                "reset_noise": self.reset_noise,
                "goal_radius": self.goal_radius,
            },
        )
        self._device_tables: dict[torch.device, dict[str, torch.Tensor]] = {}

    def _tables(self, device: torch.device) -> dict[str, torch.Tensor]:
        """Constants and obstacle tables on ``device``."""
        device = torch.device(device)
        if device not in self._device_tables:
            one = lambda v: torch.full((1,), v, dtype=torch.float32, device=device)  # noqa: E731
            h = DT / self.substeps
            boxes, circles = obstacles(arrow=self.arrow)
            box = torch.tensor(boxes, dtype=torch.float32, device=device)
            self._device_tables[device] = {
                "0": one(0.0),
                "1": one(1.0),
                "-1": one(-1.0),
                "inf": one(math.inf),
                "-inf": one(-math.inf),
                "skin": one(SKIN),
                "h": one(h),
                "h^2/2": one(h * h / 2),
                "dt": one(DT),
                "acc": one(ACCELERATION),
                "r^2": one(BODY_RADIUS**2),
                "lo": box[None, :, :2],  # [1, K, 2]
                "hi": box[None, :, 2:],
                "centres": torch.tensor(circles, dtype=torch.float32, device=device)[None],
                "goal": torch.tensor(GOAL, dtype=torch.float32, device=device),
                "1_long": torch.ones((), dtype=torch.int64, device=device),
            }
        return self._device_tables[device]

    # -- protocol ------------------------------------------------------------------------------
    def make_state(
        self,
        pos: torch.Tensor,
        vel: torch.Tensor | None = None,
        heading: torch.Tensor | None = None,
        spin: torch.Tensor | None = None,
        t: int = 0,
    ) -> PointState:
        """A state at given positions ``[B, 2]`` (at rest unless ``vel`` is given), e.g. for
        tests and replays."""
        pos = pos.to(torch.float32)
        zeros = torch.zeros(pos.shape[0], dtype=torch.float32, device=pos.device)
        return PointState(
            pos=pos,
            vel=torch.zeros_like(pos) if vel is None else vel.to(pos),
            heading=zeros.clone() if heading is None else heading.to(pos),
            spin=zeros.clone() if spin is None else spin.to(pos),
            t=torch.tensor(t, dtype=torch.int64, device=pos.device),
        )

    def reset(self, batch_size: int, *, device="cpu", generator=None) -> PointState:
        """Every point at rest at the origin, heading 0 (plus the shared ``reset_noise``)."""
        device = torch.device(device)
        pos = torch.zeros(batch_size, 2, device=device)
        vel = torch.zeros(batch_size, 2, device=device)
        heading = torch.zeros(batch_size, device=device)
        spin = torch.zeros(batch_size, device=device)
        if self.reset_noise > 0:
            where = generator.device if generator is not None else device
            s = self.reset_noise
            shift = ((torch.rand(3, generator=generator, device=where) * 2 - 1) * s).to(device)
            kick = (torch.randn(3, generator=generator, device=where) * s).to(device)
            pos, heading = pos + shift[:2], heading + shift[2]
            vel, spin = vel + kick[:2], spin + kick[2]
        return self.make_state(pos, vel, heading, spin)

    def step(self, state: PointState, actions: torch.Tensor) -> PointState:
        """Push with the clipped actions for ``DT`` seconds, sliding along walls on contact."""
        c = self._tables(state.pos.device)
        acc = torch.clamp(actions.to(torch.float32), c["-1"], c["1"]) * c["acc"]
        drift = acc * c["h^2/2"]
        kick = acc * c["h"]
        pos, vel = state.pos, state.vel
        for _ in range(self.substeps):
            delta = vel * c["h"] + drift
            vel = vel + kick
            pos, vel = self._move(pos, vel, delta, c)
        return PointState(
            pos=pos,
            vel=vel,
            heading=state.heading + state.spin * c["dt"],
            spin=state.spin,
            t=state.t + c["1_long"],
        )

    def observe(self, state: PointState) -> torch.Tensor:
        """``(x, y, heading, vx, vy, heading rate)``, ``[B, 6]``."""
        return torch.cat([state.pos, state.heading[:, None], state.vel, state.spin[:, None]], 1)

    def _goal_distance(self, state: PointState) -> torch.Tensor:
        goal = self._tables(state.pos.device)["goal"]
        return torch.hypot(goal[0] - state.pos[:, 0], goal[1] - state.pos[:, 1])

    def reward(self, state: PointState) -> torch.Tensor:
        """Reward of the last step: minus the distance to (25, 0), ``[B]``."""
        return -self._goal_distance(state)

    def reward_area(self, state: PointState) -> torch.Tensor:
        """0 within ``goal_radius`` of (25, 0), else -1."""
        radius = torch.tensor([self.goal_radius], device=state.pos.device)
        return goal_area(self._goal_distance(state)[:, None], radius)

    def descriptor(self, state: PointState) -> torch.Tensor:
        """Position (x, y), ``[B, 2]``."""
        return state.pos.clone()

    def done(self, state: PointState) -> torch.Tensor:
        """True at the horizon (episodes never end early)."""
        return (state.t >= self.spec.episode_length).expand(state.pos.shape[0])

    def goal_circles(self) -> list[tuple[float, float, float]]:
        """The reward area as (x, y, radius), for plots."""
        return [(*GOAL, self.goal_radius)]

    @staticmethod
    def _wall_mask(xs: torch.Tensor, ys: torch.Tensor, pixel: float) -> torch.Tensor:
        """``[len(ys), len(xs)]`` bool, pixels (centres ``xs``, ``ys``, side ``pixel``) that
        overlap a wall, so that thin walls show at any resolution."""
        half = pixel / 2
        mask = torch.zeros(len(ys), len(xs), dtype=torch.bool, device=xs.device)
        for x0, y0, x1, y1 in WALLS:
            inside_x = (xs[None, :] > x0 - half) & (xs[None, :] < x1 + half)
            inside_y = (ys[:, None] > y0 - half) & (ys[:, None] < y1 + half)
            mask |= inside_x & inside_y
        return mask

    def background(self, size: int = 200) -> np.ndarray:
        """RGB ``[size, size, 3]`` uint8 of the floor and walls (dark) over the descriptor
        bounds; row 0 is the lowest y (plots draw it with ``origin="lower"``)."""
        low, high = self.spec.descriptor_low[0], self.spec.descriptor_high[0]
        pixel = (high - low) / size
        centres = low + (torch.arange(size, dtype=torch.float64) + 0.5) * pixel
        walls = self._wall_mask(centres, centres, pixel).numpy()
        grey = np.where(walls, WALL_GREY, FLOOR_GREY).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)

    def render(self, state: PointState) -> torch.Tensor:
        """Top-down ``[B, 64, 64, 3]`` uint8 of ``VIEW``: floor, goal, walls, body and arrow;
        y up (image row 0 is the top of the view)."""
        size = self.spec.image_size
        device = state.pos.device
        x0, x1, y0, y1 = VIEW
        pixel = (x1 - x0) / size
        steps = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) * pixel
        xs, ys = x0 + steps, (y0 + steps).flip(0)
        gx, gy = xs[None, None, :], ys[None, :, None]
        batch = state.pos.shape[0]
        img = torch.full((batch, size, size, 3), FLOOR_GREY, dtype=torch.uint8, device=device)
        colour = lambda rgb: torch.tensor(rgb, dtype=torch.uint8, device=device)  # noqa: E731
        goal = (xs[None, :] - GOAL[0]) ** 2 + (ys[:, None] - GOAL[1]) ** 2 <= self.goal_radius**2
        img[:, goal] = colour(GOAL_COLOUR)
        img[:, self._wall_mask(xs, ys, pixel)] = WALL_GREY
        px, py = state.pos[:, 0, None, None], state.pos[:, 1, None, None]
        if self.arrow:
            ahead0, ahead1, half = ARROW
            half = max(half, pixel / 2)
            arrow = (gx >= px + ahead0) & (gx <= px + ahead1) & ((gy - py).abs() <= half)
            img[arrow] = colour(ARROW_COLOUR)
        body = (gx - px) ** 2 + (gy - py) ** 2 <= BODY_RADIUS**2
        img[body] = colour(BODY_COLOUR)
        return img
