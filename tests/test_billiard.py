"""Billiard (TAXONS): holes, termination, frozen rows, physics, render, batching."""

import math

import pytest
import torch

import envs
from envs.billiard import (
    BALL_COLOUR,
    BALL_RADIUS,
    BALL_START,
    HALF,
    HOLE_COLOUR,
    HOLE_RADIUS,
    HOLES,
    Billiard,
    BilliardState,
)
from envs.table import WALL_FACE
from qd.evaluation import LocalEvaluator
from qd.policies import SereneMLP, serene_sizes

FIELDS = ("pos", "vel", "joints", "speeds", "hole", "t")
ARM_AWAY = (-1.2, 0.0)  # arm turned to the right, clear of the balls placed in the tests
# Piecewise-constant joint speeds (until step, action) with which the arm pots the ball from
# the start (found by a search over such sequences; re-found for the issue-17 geometry, where
# the walls' faces at +-1.45 leave the ball's centre a 0.05-wide band within a hole's reach).
POTS = {
    0: [(73, (0.5, -0.5)), (101, (0.5, -1.0)), (300, (1.0, 1.0))],
    1: [(60, (1.0, -1.0)), (100, (1.0, 0.0)), (300, (-1.0, -1.0))],
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def env():
    return Billiard()


def _state(env, pos, vel=None, joints=None):
    """A running state from per-row lists."""
    pos = torch.tensor(pos, dtype=torch.float32)
    vel = None if vel is None else torch.tensor(vel, dtype=torch.float32)
    joints = torch.tensor(joints if joints is not None else [ARM_AWAY] * len(pos))
    return env.make_state(pos, vel, joints)


def _rows(state: BilliardState, rows) -> BilliardState:
    """Rows ``rows`` (a slice) of every batched field."""
    return BilliardState(*(getattr(state, f)[rows] for f in FIELDS[:-1]), state.t)


def _equal(a: BilliardState, b: BilliardState) -> bool:
    """Same batched fields (the step counters may differ)."""
    return all(torch.equal(getattr(a, f), getattr(b, f)) for f in FIELDS[:-1])


def _scripted(schedule, t):
    for until, action in schedule:
        if t < until:
            return action
    return schedule[-1][1]


def test_spec_and_options():
    spec = Billiard().spec
    assert spec.name == "billiard" and (spec.obs_size, spec.action_size) == (6, 2)
    assert spec.episode_length == 300 and spec.descriptor_size == 2
    assert spec.descriptor_low == (-1.35, -1.35) and spec.descriptor_high == (1.35, 1.35)
    assert spec.grid_shape == (50, 50) and spec.reward_areas == 2
    assert spec.final_reward_only and spec.can_terminate
    assert Billiard(**spec.options).spec == spec
    assert Billiard(wall_elasticity=0.95).spec.options["wall_elasticity"] == 0.95
    for bad in ({"episode_length": 0}, {"ball_radius": 0.0}, {"elasticity": 1.5}):
        with pytest.raises(ValueError):
            Billiard(**bad)


@pytest.mark.skipif("billiard" not in envs.names(), reason="not registered yet")
def test_registry():
    env = envs.make("billiard", episode_length=50)
    assert isinstance(env, Billiard) and env.spec.episode_length == 50
    assert envs.make("billiard", **env.spec.options).spec == env.spec


def test_shapes_and_start(env):
    s = env.reset(5)
    assert env.observe(s).shape == (5, 6)
    assert env.observe(s)[0].tolist() == pytest.approx([*BALL_START, 0, 0, 0, 0])
    assert env.reward(s).tolist() == [0.0] * 5 and env.reward_area(s).tolist() == [-1] * 5
    assert env.descriptor(s).shape == (5, 2) and not env.done(s).any()
    s = env.step(s, torch.rand(5, 2) * 2 - 1)
    assert env.observe(s).shape == (5, 6) and s.t.item() == 1
    img = env.render(s)
    assert img.shape == (5, 64, 64, 3) and img.dtype == torch.uint8
    assert env.background(100).shape == (100, 100, 3) and len(env.goal_circles()) == 2


def test_deterministic(env):
    actions = torch.rand(200, 4, 2, generator=torch.Generator().manual_seed(1)) * 2 - 1
    runs = []
    for _ in range(2):
        s = env.reset(4)
        for a in actions:
            s = env.step(s, a)
        runs.append(s)
    assert _equal(*runs) and runs[0].joints.abs().min() > 0


def test_batch_invariance(env):
    gen = torch.Generator().manual_seed(3)
    rows = 12
    pos = torch.rand(rows, 2, generator=gen) * 2.2 - 1.1
    pos[:, 1] = pos[:, 1].abs()  # upper half of the table, near the arm and the holes
    vel = (torch.rand(rows, 2, generator=gen) * 2 - 1) * 3
    vel[::3] = torch.sign(pos[::3]) * 2.5  # some rows head for the holes
    joints = (torch.rand(rows, 2, generator=gen) * 2 - 1) * 0.5
    actions = torch.rand(150, rows, 2, generator=gen) * 2 - 1
    big = env.make_state(pos, vel, joints)
    small = env.make_state(pos[:5], vel[:5], joints[:5])
    alone = env.make_state(pos[7:8], vel[7:8], joints[7:8])
    for a in actions:
        big, small, alone = env.step(big, a), env.step(small, a[:5]), env.step(alone, a[7:8])
        assert _equal(small, _rows(big, slice(0, 5))) and _equal(alone, _rows(big, slice(7, 8)))
    assert (big.hole >= 0).any() and (big.hole < 0).any()
    # the same through the evaluator with SERENE policies
    policy = SereneMLP(serene_sizes(6, 2))
    genomes = torch.randn(16, policy.genome_size, generator=gen) * 2
    short = Billiard(episode_length=80)
    a = LocalEvaluator(short, policy).evaluate(genomes[:7])
    b = LocalEvaluator(short, policy).evaluate(genomes)
    c = LocalEvaluator(short, policy).evaluate(genomes[3:4])
    for name in ("fitness", "reward_area", "descriptor", "final_obs"):
        assert torch.equal(getattr(a, name), getattr(b, name)[:7]), name
        assert torch.equal(getattr(c, name), getattr(b, name)[3:4]), name


@pytest.mark.parametrize("hole", [0, 1])
def test_ball_sent_to_a_hole_ends_the_episode_there(env, hole):
    hx, hy = HOLES[hole]
    # row 0 rolls towards the hole; row 1 rests in a far corner while its arm keeps moving
    side = math.copysign(1.0, hx)
    s = _state(env, [(0.8 * side, 0.8), (-1.2, -1.2)], vel=[(2.0 * side, 2.0), (0.0, 0.0)])
    actions = torch.tensor([[0.0, 0.0], [0.5, -0.5]])
    steps = 0
    while s.hole[0] < 0:
        assert env.reward(s)[0] == 0 and not env.done(s)[0]
        s = env.step(s, actions)
        steps += 1
        assert steps < 100, "the ball never reached the hole"
    assert s.hole.tolist() == [hole, -1]
    assert env.reward(s).tolist() == [100.0, 0.0] and env.reward_area(s).tolist() == [hole, -1]
    assert env.done(s).tolist() == [True, False]
    fell = env.descriptor(s)[0]
    assert math.dist(fell.tolist(), (hx, hy)) < HOLE_RADIUS
    assert (fell.abs() <= WALL_FACE - BALL_RADIUS).all()
    frozen = s
    for _ in range(30):  # the finished row does not move any more; the other one does
        s = env.step(s, torch.tensor([[1.0, 1.0], [0.5, -0.5]]))
    assert _equal(_rows(s, slice(0, 1)), _rows(frozen, slice(0, 1)))
    assert not torch.equal(s.joints[1], frozen.joints[1])
    assert env.reward(s)[0] == 100.0 and env.reward_area(s)[0] == hole
    assert env.descriptor(s)[0].tolist() == fell.tolist()


@pytest.mark.parametrize("hole", [0, 1])
def test_arm_pushes_the_ball_into_each_hole(env, hole):
    s = env.reset(1)
    for t in range(env.spec.episode_length):
        s = env.step(s, torch.tensor([_scripted(POTS[hole], t)]))
        if env.done(s).item():
            break
    assert s.hole.item() == hole and t + 1 < env.spec.episode_length
    assert env.reward(s).item() == 100.0 and env.reward_area(s).item() == hole


def test_steps_after_the_horizon_change_nothing():
    env = Billiard(episode_length=5)
    s = env.reset(2)
    for _ in range(5):
        s = env.step(s, torch.ones(2, 2))
    assert env.done(s).all() and (s.hole < 0).all() and env.reward(s).tolist() == [0.0, 0.0]
    after = env.step(s, -torch.ones(2, 2))
    assert _equal(after, s)


def test_wall_bounce_with_elasticity_07(env):
    s = _state(env, [(0.9, -0.5)], vel=[(3.0, 0.0)])
    before = None
    for _ in range(40):
        prev, s = s, env.step(s, torch.zeros(1, 2))
        if prev.vel[0, 0] > 0 and s.vel[0, 0] < 0:
            before, after = prev.vel[0, 0].item(), s.vel[0, 0].item()
            break
    assert before is not None, "the ball never bounced"
    damping = (1 / (1 + (1 / 120) * 1.1)) ** 2
    assert -after == pytest.approx(0.7 * before * damping, rel=1e-4)
    assert s.pos[0, 0].item() <= WALL_FACE - BALL_RADIUS
    # the walls may keep Box2D's mixed restitution instead
    bounced = Billiard(wall_elasticity=0.95).step(prev, torch.zeros(1, 2))
    assert -bounced.vel[0, 0].item() == pytest.approx(0.95 * before * damping, rel=1e-4)


def test_arm_bounce_with_elasticity_07(env):
    # arm straight up along x = 0 (at rest); the ball comes from the left, normal to the link
    s = _state(env, [(-0.6, 0.0)], vel=[(2.0, 0.0)], joints=[(0.0, 0.0)])
    before = None
    for _ in range(40):
        prev, s = s, env.step(s, torch.zeros(1, 2))
        if s.vel[0, 0] < 0:
            before, after = prev.vel[0, 0].item(), s.vel[0, 0].item()
            break
    assert before is not None, "the ball never bounced"
    damping = (1 / (1 + (1 / 120) * 1.1)) ** 2
    assert -after == pytest.approx(0.7 * before * damping, rel=1e-4)
    assert s.vel[0, 1].item() == pytest.approx(0.0, abs=1e-6)  # no tangential kick
    assert s.pos[0, 0].item() <= -(BALL_RADIUS + 0.025) + 1e-6  # never inside the link


def test_ball_never_leaves_the_table(env):
    gen = torch.Generator().manual_seed(0)
    rows = 256
    # half from the start, half thrown from random places; the arm sweeps steadily (+ noise)
    pos = torch.rand(rows, 2, generator=gen) * 2.4 - 1.2
    pos[: rows // 2] = torch.tensor(BALL_START)
    vel = (torch.rand(rows, 2, generator=gen) * 2 - 1) * 5
    vel[: rows // 2] = 0
    s = env.make_state(pos, vel, torch.zeros(rows, 2))
    steady = torch.rand(rows, 2, generator=gen) * 2 - 1
    for _ in range(env.spec.episode_length):
        s = env.step(s, steady + (torch.rand(rows, 2, generator=gen) - 0.5))
        assert (s.pos.abs() <= WALL_FACE - BALL_RADIUS + 1e-6).all()
    moved = torch.linalg.vector_norm(s.pos[: rows // 2] - torch.tensor(BALL_START), dim=1)
    assert (moved > 0.1).sum() > rows // 8  # the arm did hit many balls
    assert (s.hole >= 0).any()


def _colour_mask(img, colour):
    return (img == torch.tensor(colour, dtype=torch.uint8)).all(-1)


def test_render_shows_ball_and_holes_but_not_the_arm(env):
    pos = [(0.3, -0.4)] * 3
    s = _state(env, pos, joints=[(0.0, 0.0), (1.0, -2.0), (-1.2, 2.5)])
    img = env.render(s)
    assert torch.equal(img[0], img[1]) and torch.equal(img[0], img[2])  # the arm is not drawn
    ball = _colour_mask(img[0], BALL_COLOUR)
    expected = math.pi * (BALL_RADIUS * 64 / (2 * HALF)) ** 2
    assert ball.sum().item() == pytest.approx(expected, rel=0.2)
    rows, cols = ball.nonzero().float().mean(0).tolist()  # row 0 is the top of the table
    assert (cols + 0.5) * 3 / 64 - 1.5 == pytest.approx(0.3, abs=0.05)
    assert 1.5 - (rows + 0.5) * 3 / 64 == pytest.approx(-0.4, abs=0.05)
    holes = _colour_mask(img[0], HOLE_COLOUR)
    assert holes[:10, :10].sum() > 20 and holes[:10, -10:].sum() > 20 and not holes[20:].any()
    # a ball in a hole is drawn over it; an empty table shows no ball
    in_hole = env.render(_state(env, [(-1.25, 1.25)]))
    assert _colour_mask(in_hole[0, :12, :12], BALL_COLOUR).sum() > 30
    empty = env.render(_state(env, [(5.0, 5.0)]))
    assert not _colour_mask(empty, BALL_COLOUR).any()
    bg = env.background(60)
    assert (bg == HOLE_COLOUR).all(-1)[-2:, :2].all() and not (bg == HOLE_COLOUR).all(-1)[:40].any()


class _Aimed(Billiard):
    """Starts even rows rolling into the left hole and odd rows into the right one."""

    def reset(self, batch_size, *, device="cpu", generator=None):
        side = torch.where(torch.arange(batch_size) % 2 == 0, -1.0, 1.0)[:, None]
        pos = torch.tensor([0.8, 0.8]) * torch.cat([side, torch.ones_like(side)], 1)
        vel = torch.tensor([2.0, 2.0]) * torch.cat([side, torch.ones_like(side)], 1)
        return self.make_state(pos, vel, torch.tensor([ARM_AWAY] * batch_size))


def test_local_evaluator_with_terminating_episodes():
    env = _Aimed(episode_length=60)
    policy = SereneMLP(serene_sizes(6, 2))
    genomes = torch.randn(4, policy.genome_size, generator=torch.Generator().manual_seed(0))
    out = LocalEvaluator(env, policy).evaluate(genomes, frames=3, path=6)
    assert out.fitness.tolist() == [100.0] * 4
    assert out.reward_area.tolist() == [0, 1, 0, 1]
    for row, hole in enumerate(out.reward_area.tolist()):
        assert math.dist(out.descriptor[row].tolist(), HOLES[hole]) < HOLE_RADIUS
    # the ball fell early: the later recordings all show the frozen position
    assert torch.equal(out.path[:, -1], out.descriptor)
    assert torch.equal(out.path[:, 2], out.path[:, -1])
    assert torch.equal(out.frames[:, 1], out.frames[:, 2])


def test_random_mlp_policies_spread_the_ball(env):
    policy = SereneMLP(serene_sizes(6, 2))
    genomes = torch.randn(128, policy.genome_size, generator=torch.Generator().manual_seed(0))
    out = LocalEvaluator(env, policy).evaluate(genomes)
    d = out.descriptor
    assert (d.abs() <= 1.35).all()
    moved = torch.linalg.vector_norm(d - torch.tensor(BALL_START), dim=1) > 0.05
    cells = {tuple(c) for c in ((d + 1.35) / 2.7 * 50).long().clamp(0, 49).tolist()}
    assert moved.sum().item() >= 30 and len(cells) >= 25
    assert (d.std(0) > 0.2).all()
    assert ((out.fitness == 100.0) == (out.reward_area >= 0)).all()
