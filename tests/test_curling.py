"""Curling physics: the behaviours that matter (see envs/curling.py for the approximation), and the
table rules shared with Billiard (envs/table.py): the original gym_billiard geometry and Box2D's
restitution threshold, against hand-computed values."""

import math

import pytest
import torch

import envs
from envs.curling import BALL_RADIUS, LIMITS, Curling
from envs.table import REACH, THICKNESS, WALL_FACE, link_boxes

H = 1 / 120  # a sub-step
SLOW = 1 / (1 + H * 1.1)  # Box2D damping over one sub-step


def _state(env, pos, vel=(0.0, 0.0), joints=(0.0, 0.0)):
    s = env.reset(1)
    return type(s)(
        torch.tensor([pos]), torch.tensor([vel]), torch.tensor([joints]), torch.zeros(1, 2), s.t
    )


def _box_gap(joints, pos):
    """Distance ``[B]`` from ``pos`` to the nearer link box (0 inside)."""
    gaps = []
    for start, d in link_boxes(joints):
        n = torch.stack([-d[:, 1], d[:, 0]], 1)
        u, v = ((pos - start) * d).sum(1), ((pos - start) * n).sum(1)
        du = (u - u.clamp(0, 1)).abs()
        dv = (v.abs() - THICKNESS / 2).clamp(min=0)
        gaps.append(torch.hypot(du, dv))
    return torch.minimum(*gaps)


def test_arm_pushes_the_ball():
    env = Curling()
    s = env.reset(1)  # ball at (-0.5, 0.2), arm straight up along x = 0
    fastest = 0.0
    for _ in range(120):  # rotate joint0 towards the ball (positive = counter-clockwise)
        s = env.step(s, torch.tensor([[1.0, 0.0]]))
        fastest = max(fastest, torch.linalg.vector_norm(s.vel[0]).item())
        # never overlapping the arm's boxes (by more than 1e-3 when squeezed against a wall:
        # the wall contact is resolved last)
        assert _box_gap(s.joints, s.pos).item() >= BALL_RADIUS - 1e-3
    assert s.pos[0, 0] < -0.55  # pushed to the left
    # hit at 1.77 m/s (> 1: a bounce), at about 1.9 x 1.77 (before issue 17 the ball was still
    # rolling at step 120; the longer, thicker arm now pins it against the wall)
    assert fastest > 3.0


def _at_rest_after_one_step(env, pos, joints):
    s = env.step(_state(env, pos, joints=joints), torch.zeros(1, 2))
    return s.pos[0].tolist(), s.vel[0].tolist()


def test_tip_reaches_1_9_from_the_base():
    env = Curling()
    assert REACH == pytest.approx(1.9)
    assert env.arm_points(torch.zeros(1, 2))[2][0].tolist() == pytest.approx([0.0, 0.4], abs=1e-6)
    # straight arm: the tip's face is at y = -1.5 + 1.9 = 0.4, a touching ball at 0.55
    pos, vel = _at_rest_after_one_step(env, (0.0, 0.54), (0.0, 0.0))
    assert pos == pytest.approx([0.0, 0.55], abs=1e-6) and vel == [0.0, 0.0]
    assert _at_rest_after_one_step(env, (0.0, 0.56), (0.0, 0.0))[0] == pytest.approx([0.0, 0.56])


def test_links_are_0_1_thick():
    env = Curling()
    # beside link 1 of the straight arm: its side face at x = 0.05, a touching ball at 0.2
    assert _at_rest_after_one_step(env, (0.19, 0.0), (0.0, 0.0))[0] == pytest.approx(
        [0.2, 0.0], abs=1e-6
    )
    assert _at_rest_after_one_step(env, (0.21, 0.0), (0.0, 0.0))[0] == pytest.approx([0.21, 0.0])


def test_link_1_starts_0_1_behind_the_elbow():
    env = Curling()
    # elbow at (0, -0.5), link 1 turned to -x: its box runs from x = 0.1 to x = -0.9
    joints = (0.0, math.pi / 2)
    _, elbow, tip = env.arm_points(torch.tensor([joints]))
    assert elbow[0].tolist() == pytest.approx([0.0, -0.5], abs=1e-6)
    assert tip[0].tolist() == pytest.approx([-0.9, -0.5], abs=1e-6)
    assert _at_rest_after_one_step(env, (0.24, -0.5), joints)[0] == pytest.approx(
        [0.25, -0.5], abs=1e-6
    )
    assert _at_rest_after_one_step(env, (0.26, -0.5), joints)[0] == pytest.approx([0.26, -0.5])


def test_walls_inner_faces_at_1_45():
    env = Curling()
    assert WALL_FACE == pytest.approx(1.45)
    s = _state(env, (1.2, -1.2), vel=(3.0, -3.0), joints=(-1.2, 0.0))
    reached = [0.0, 0.0]
    for _ in range(30):
        s = env.step(s, torch.zeros(1, 2))
        assert (s.pos.abs() <= 1.3 + 1e-6).all()
        reached = [max(r, abs(p)) for r, p in zip(reached, s.pos[0].tolist(), strict=True)]
    assert reached == pytest.approx([1.3, 1.3], abs=1e-6)  # 1.45 - 0.15


@pytest.mark.parametrize(
    "speed, after",
    [
        # contact in the first sub-step at speed * SLOW; above 1 m/s it bounces with 0.9
        (1.02, -0.9 * 1.02 * SLOW * SLOW),
        (1.0, 0.0),  # 0.991 m/s at the contact: inelastic, the ball stops at the wall
        (0.5, 0.0),
    ],
)
def test_wall_restitution_threshold(speed, after):
    env = Curling()
    s = env.step(_state(env, (1.299, 0.0), vel=(speed, 0.0), joints=(-1.2, 0.0)), torch.zeros(1, 2))
    assert s.vel[0, 0].item() == pytest.approx(after, abs=1e-5)
    if after == 0.0:
        assert s.pos[0, 0].item() == pytest.approx(1.3)


@pytest.mark.parametrize(
    "y, vx",
    [
        # the arm turning clockwise at 1 rad/s meets a ball touching link 0's side 0.5 from
        # the base: approach at 0.5 m/s, inelastic, the ball moves on with the arm (an elastic
        # push would give 1.9 x 0.5 = 0.95)
        (-1.0, 0.5),
        # ... or touching link 1's side 1.7 from the base: approach at 1.7 m/s, bounce with
        # 0.9: 1.9 x 1.7 = 3.23, damped over the second sub-step (inelastic: 1.7)
        (0.2, 1.9 * 1.7 * SLOW),
    ],
)
def test_arm_restitution_threshold(y, vx):
    env = Curling()
    s = env.step(_state(env, (0.2, y)), torch.tensor([[-1.0, 0.0]]))
    assert s.vel[0, 0].item() == pytest.approx(vx, rel=0.03)


def test_wall_bounce_with_elasticity():
    env = Curling()
    s = _state(env, (1.2, 0.0), vel=(3.0, 0.0), joints=(-1.2, 0.0))
    before = None
    for _ in range(30):
        prev = s
        s = env.step(s, torch.zeros(1, 2))
        if prev.vel[0, 0] > 0 and s.vel[0, 0] < 0:
            before = prev.vel[0, 0].item()
            after = s.vel[0, 0].item()
            break
    assert before is not None, "the ball never bounced"
    damping = (1 / (1 + (1 / 120) * 1.1)) ** 2
    assert -after == pytest.approx(0.9 * before * damping, rel=0.02)


def test_damping_stops_the_ball():
    env = Curling()
    s = _state(env, (0.0, 0.5), vel=(0.5, 0.0), joints=(-1.2, 0.0))
    for _ in range(60 * 6):  # six seconds
        s = env.step(s, torch.zeros(1, 2))
    assert torch.linalg.vector_norm(s.vel).item() < 0.5 * math.exp(-1.1 * 6) * 1.2


def test_joint_limits_hold():
    env = Curling()
    s = env.reset(2)
    for _ in range(600):
        s = env.step(s, torch.tensor([[1.0, 1.0], [-1.0, -1.0]]))
    assert s.joints[0].tolist() == pytest.approx([LIMITS[0], LIMITS[1]])
    assert s.joints[1].tolist() == pytest.approx([-LIMITS[0], -LIMITS[1]])
    assert (s.speeds == 0).all()  # stopped at the limit


def test_ball_never_leaves_the_table():
    env = envs.make("curling")
    gen = torch.Generator().manual_seed(0)
    s = env.reset(256)
    for _ in range(500):
        s = env.step(s, torch.rand(256, 2, generator=gen) * 2 - 1)
        assert (s.pos.abs() <= WALL_FACE - BALL_RADIUS + 1e-6).all()


def test_reward_descriptor_render():
    env = Curling()
    s = _state(env, (0.8, 0.8))
    s.t = torch.tensor(env.spec.episode_length)
    assert env.reward(s).item() == pytest.approx(1.0)
    assert env.reward_area(s).item() == 0
    s2 = _state(env, (0.8, -0.7))
    s2.t = s.t
    assert env.reward(s2).item() == pytest.approx(0.5, abs=1e-5)
    assert env.reward_area(s2).item() == 1
    assert env.descriptor(s)[0].tolist() == pytest.approx([0.8, 0.8])
    img = env.render(env.reset(3))
    assert img.shape == (3, 64, 64, 3) and img.dtype == torch.uint8
    assert (img == torch.tensor([220, 30, 30], dtype=torch.uint8)).all(-1).any()
    assert (img == torch.tensor([40, 60, 200], dtype=torch.uint8)).all(-1).any()
