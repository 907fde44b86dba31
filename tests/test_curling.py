"""Curling physics: the behaviours that matter (see envs/curling.py for the approximation)."""

import math

import pytest
import torch

import envs
from envs.curling import BALL_RADIUS, HALF, LIMITS, Curling


def _state(env, pos, vel=(0.0, 0.0), joints=(0.0, 0.0)):
    s = env.reset(1)
    return type(s)(
        torch.tensor([pos]), torch.tensor([vel]), torch.tensor([joints]), torch.zeros(1, 2), s.t
    )


def test_arm_pushes_the_ball():
    env = Curling()
    s = env.reset(1)  # ball at (-0.5, 0.2), arm straight up along x = 0
    for _ in range(120):  # rotate joint0 towards the ball (positive = counter-clockwise)
        s = env.step(s, torch.tensor([[1.0, 0.0]]))
    assert s.pos[0, 0] < -0.55  # pushed to the left
    assert torch.linalg.vector_norm(s.vel[0]) > 0.1
    base, elbow, tip = env.arm_points(s.joints)
    # never overlapping the arm
    for a, b in ((base, elbow), (elbow, tip)):
        seg = b - a
        t = (((s.pos - a) * seg).sum(1) / (seg * seg).sum(1)).clamp(0, 1)
        gap = torch.linalg.vector_norm(s.pos - (a + t[:, None] * seg), dim=1)
        assert gap.item() >= BALL_RADIUS + 0.025 - 1e-5


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
        assert (s.pos.abs() <= HALF - BALL_RADIUS + 1e-6).all()


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
