"""The table scene shared by :mod:`envs.curling` and :mod:`envs.billiard`: a 3 x 3 m walled table
(top-down, no gravity), a kinematic 2-link arm mounted at the middle of its bottom edge, and the
batched contact approximation of a ball (of any radius and elasticity) against the arm's links
and the walls. The approximation itself is described in :mod:`envs.curling`.

Geometry as in the authors' ``gym_billiard`` (``utils/physics.py``, ``utils/parameters.py``;
issue 17): the links are boxes 1 long and 0.1 thick (Box2D half-width 0.05); link 1's box starts
0.1 behind the elbow, overlapping link 0, so the arm's tip is 1.9 from the base when straight;
the walls are 0.1-thick boxes centred on the table edges, so their inner faces are at
+-``WALL_FACE`` = +-1.45. Contacts follow Box2D's restitution threshold: a contact whose
approach speed is at most ``VELOCITY_THRESHOLD`` (1 m/s) is inelastic (no bounce).

Everything works on batches ``[B, ...]`` with element-wise ops and reductions within a row.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from envs.base import EnvSpec

HALF = 1.5  # the table's edges, where the walls are centred, at +-HALF
WALL_THICKNESS = 0.1
WALL_FACE = HALF - WALL_THICKNESS / 2  # the walls' inner faces, at +-1.45
BALL_START = (-0.5, 0.2)
FRICTION = 0.9  # ball-link Coulomb friction
DAMPING = 1.1  # ball linear damping, Box2D style
LINK = 1.0  # length of each link box, and the distance from the base to the elbow
THICKNESS = 0.1  # link box thickness (the original's box half-width 0.05)
OVERLAP = 0.1  # link 1's box starts this far behind the elbow (over link 0)
REACH = 2 * LINK - OVERLAP  # the tip's distance from the base when the arm is straight (1.9)
VELOCITY_THRESHOLD = 1.0  # Box2D's b2_velocityThreshold: slower approaches do not bounce
BASE = (0.0, -1.5)  # the arm's base
LIMITS = (0.4 * math.pi, 0.9 * math.pi)  # joint limits, +-
DT = 1.0 / 60.0
DESCRIPTOR_HALF = 1.35  # descriptor bounds: the final ball (x, y) in [-1.35, 1.35]^2

_CONSTANTS: dict[tuple, torch.Tensor] = {}


def constant(values, *, device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``torch.tensor(values, dtype=dtype, device=device)``, built once per (values, device,
    dtype) so that steps copy nothing from the host. Do not modify the result in place."""
    key = (values, torch.device(device), dtype or torch.get_default_dtype())
    tensor = _CONSTANTS.get(key)
    if tensor is None:
        with torch.inference_mode(False):  # a normal tensor even when first asked for in one
            tensor = _CONSTANTS[key] = torch.tensor(values, dtype=key[2], device=key[1])
    return tensor


def table_spec(
    name: str, *, episode_length: int, reward_areas: int, options: dict, **flags
) -> EnvSpec:
    """The spec of a table scene: observation (6) ball x, y, joint angles, joint speeds; actions
    (2) joint speeds; descriptor the final ball (x, y) in ``[-1.35, 1.35]^2``, 50 x 50 grid.
    ``flags``: further :class:`envs.base.EnvSpec` fields."""
    return EnvSpec(
        name=name,
        obs_size=6,
        action_size=2,
        episode_length=int(episode_length),
        descriptor_size=2,
        descriptor_low=(-DESCRIPTOR_HALF, -DESCRIPTOR_HALF),
        descriptor_high=(DESCRIPTOR_HALF, DESCRIPTOR_HALF),
        grid_shape=(50, 50),
        reward_areas=reward_areas,
        options=options,
        **flags,
    )


def cross(omega: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """2-D ``omega x r`` for ``omega [B]`` and ``r [B, 2]``."""
    return torch.stack([-omega * r[:, 1], omega * r[:, 0]], 1)


def _directions(joints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit directions ``[B, 2]`` of link 0 and link 1; angle 0 points along +y."""
    a0 = math.pi / 2 + joints[:, 0]
    a1 = a0 + joints[:, 1]
    return torch.stack([torch.cos(a0), torch.sin(a0)], 1), torch.stack(
        [torch.cos(a1), torch.sin(a1)], 1
    )


def arm_points(joints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Base, elbow and tip ``[B, 2]`` for joint angles ``[B, 2]``; angle 0 points the links
    along +y (into the table). The tip is the end of link 1's box, ``LINK - OVERLAP`` (0.9)
    beyond the elbow."""
    base = constant(BASE, dtype=joints.dtype, device=joints.device).expand(len(joints), 2)
    d0, d1 = _directions(joints)
    elbow = base + LINK * d0
    tip = elbow + (LINK - OVERLAP) * d1
    return base, elbow, tip


def link_boxes(joints: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """The two link boxes as ``(start, direction)`` pairs ``[B, 2]``: each box runs ``LINK``
    from ``start`` along the unit ``direction``, ``THICKNESS`` wide around that axis (link 0
    from the base to the elbow, link 1 from ``OVERLAP`` behind the elbow to the tip)."""
    base = constant(BASE, dtype=joints.dtype, device=joints.device).expand(len(joints), 2)
    d0, d1 = _directions(joints)
    elbow = base + LINK * d0
    return (base, d0), (elbow - OVERLAP * d1, d1)


def move_joints(
    joints: torch.Tensor, speeds: torch.Tensor, h: float, limits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn the joints at ``speeds`` for ``h`` seconds, stopping at ``+-limits``.

    Returns:
        The new joint angles and the speeds actually applied (0 for a joint at its limit).
    """
    wanted = joints + speeds * h
    joints = torch.maximum(torch.minimum(wanted, limits), -limits)
    return joints, speeds * (joints == wanted)


def vector_norm(v: torch.Tensor) -> torch.Tensor:
    """Row norms ``[B]`` of ``v [B, 2]`` by ``torch.linalg.vector_norm`` (Curling's)."""
    return torch.linalg.vector_norm(v, dim=1)


def sqrt_norm(v: torch.Tensor) -> torch.Tensor:
    """Row norms ``[B]`` of ``v [B, 2]`` as ``sqrt(x * x + y * y)`` in the input's precision
    (Billiard's; it may differ from :func:`vector_norm` in the last bit)."""
    return torch.sqrt(v[:, 0] * v[:, 0] + v[:, 1] * v[:, 1])


def arm_contacts(
    pos: torch.Tensor,
    vel: torch.Tensor,
    joints: torch.Tensor,
    speeds: torch.Tensor,
    *,
    radius: float,
    elasticity: float,
    friction: float = FRICTION,
    norm: Callable[[torch.Tensor], torch.Tensor] = vector_norm,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resolve the contacts of balls ``pos, vel [B, 2]`` with the arm's link boxes.

    A ball overlapping a link box (:func:`link_boxes`) is pushed out along the contact normal
    (from the box's closest point; a centre inside the box leaves through the nearer long
    side); if it approaches the link's contact point (whose velocity follows from the joint
    angles ``joints`` and applied speeds ``speeds``), its relative normal velocity is reflected
    with ``elasticity`` when the approach is faster than ``VELOCITY_THRESHOLD``, else cancelled
    (Box2D's restitution threshold), and Coulomb ``friction`` cuts its relative tangential
    velocity by at most friction x normal impulse. ``norm`` computes the row norms (the
    environments keep their own, see :func:`sqrt_norm`).

    Returns:
        The new ``(pos, vel)``.
    """
    base = constant(BASE, dtype=joints.dtype, device=joints.device).expand(len(joints), 2)
    half = THICKNESS / 2
    omega0 = speeds[:, 0]
    omega1 = omega0 + speeds[:, 1]
    elbow = None
    for link, (start, d) in enumerate(link_boxes(joints)):
        n = torch.stack([-d[:, 1], d[:, 0]], 1)
        rel_pos = pos - start
        u = (rel_pos * d).sum(1)
        v = (rel_pos * n).sum(1)
        inside = (u >= 0) & (u <= LINK) & (v.abs() <= half)
        side = torch.where(v >= 0, half, -half)
        across = torch.where(inside, side, v.clamp(-half, half))
        closest = start + u.clamp(0, LINK)[:, None] * d + across[:, None] * n
        offset = pos - closest
        dist = norm(offset)
        touching = inside | (dist < radius)
        outward = offset / dist.clamp(min=1e-9)[:, None]
        normal = torch.where(inside[:, None], n * (side / half)[:, None], outward)
        # velocity of the arm at the contact point (kinematic chain)
        if link == 0:
            point_vel = cross(omega0, closest - base)
            elbow = base + LINK * d
        else:
            point_vel = cross(omega0, elbow - base) + cross(omega1, closest - elbow)
        rel = vel - point_vel
        rel_n = (rel * normal).sum(1)
        approaching = touching & (rel_n < 0)
        bounce = torch.where(rel_n < -VELOCITY_THRESHOLD, elasticity, 0.0)
        impulse_n = -(1 + bounce) * rel_n  # per unit mass
        tangent = rel - rel_n[:, None] * normal
        tangent_speed = norm(tangent)
        cut = torch.minimum(tangent_speed, friction * impulse_n.clamp(min=0))
        slip = -tangent / tangent_speed.clamp(min=1e-9)[:, None] * cut[:, None]
        new_vel = vel + impulse_n[:, None] * normal + slip
        vel = torch.where(approaching[:, None], new_vel, vel)
        pushed = closest + normal * radius
        pos = torch.where(touching[:, None], pushed, pos)
    return pos, vel


def wall_contacts(
    pos: torch.Tensor, vel: torch.Tensor, *, radius: float, elasticity: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep balls of ``radius`` inside ``[-WALL_FACE + radius, WALL_FACE - radius]^2``: the
    normal velocity of a ball moving into a wall is reflected with ``elasticity`` if faster
    than ``VELOCITY_THRESHOLD``, else cancelled (the ball stops against the wall); wall
    friction is ignored.

    Returns:
        The new ``(pos, vel)``.
    """
    bound = WALL_FACE - radius
    into = ((pos > bound) & (vel > 0)) | ((pos < -bound) & (vel < 0))
    bounced = torch.where(vel.abs() > VELOCITY_THRESHOLD, -elasticity * vel, torch.zeros_like(vel))
    vel = torch.where(into, bounced, vel)
    return pos.clamp(-bound, bound), vel
