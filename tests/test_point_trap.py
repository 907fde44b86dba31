"""Point trap: dynamics, the wall's trap, reward, batching, render (see envs/point_trap.py)."""

import math

import pytest
import torch

from envs.point_trap import (
    ACCELERATION,
    ARROW,
    ARROW_COLOUR,
    BODY_COLOUR,
    BODY_RADIUS,
    DT,
    GOAL_COLOUR,
    SKIN,
    VIEW,
    WALL_GREY,
    WALLS,
    PointTrap,
)
from qd.evaluation import LocalEvaluator
from qd.policies import SereneMLP, serene_sizes

# hand-written open-loop control around the lower arm: 5 pieces of 10 steps
AROUND = [(1.0, -0.5), (1.0, 0.5), (-0.7, 0.8), (-1.0, -0.8), (-0.8, 0.0)]


@pytest.fixture(scope="module")
def env():
    return PointTrap()


pytestmark = pytest.mark.usefixtures("one_thread")


def rollout(env, actions, state=None):
    """Run ``actions [T, B, 2]``; return the final state, the return ``[B]`` and positions."""
    state = env.reset(actions.shape[1]) if state is None else state
    ret = torch.zeros(actions.shape[1])
    path = []
    for a in actions:
        state = env.step(state, a)
        ret += env.reward(state)
        path.append(state.pos)
    return state, ret, torch.stack(path)


def constant(action, steps=50, batch=1):
    return torch.tensor(action, dtype=torch.float32).expand(steps, batch, 2)


def overlaps_walls(pos, arrow=True):
    """``[...]`` bool: the body (disc, and arrow along +x) overlaps a wall (beyond 1e-4)."""
    x, y = pos[..., 0], pos[..., 1]
    bad = torch.zeros_like(x, dtype=torch.bool)
    ahead0, ahead1, half = ARROW
    for x0, y0, x1, y1 in WALLS:
        dx = (torch.maximum(x0 - x, x - x1)).clamp(min=0)
        dy = (torch.maximum(y0 - y, y - y1)).clamp(min=0)
        bad |= torch.hypot(dx, dy) < BODY_RADIUS - 1e-4
        if arrow:
            bad |= (
                (x + ahead1 > x0 + 1e-4)
                & (x + ahead0 < x1 - 1e-4)
                & (y + half > y0 + 1e-4)
                & (y - half < y1 - 1e-4)
            )
    return bad


def test_spec_shapes_and_dtypes(env):
    spec = env.spec
    assert (spec.name, spec.obs_size, spec.action_size, spec.episode_length) == (
        "point-trap",
        6,
        2,
        50,
    )
    assert not spec.final_reward_only and not spec.can_terminate and spec.reward_areas == 1
    assert spec.grid_shape == (50, 50) and spec.descriptor_size == 2
    s = env.reset(5)
    s = env.step(s, torch.zeros(5, 2))
    assert env.observe(s).shape == (5, 6) and env.observe(s).dtype == torch.float32
    assert env.reward(s).shape == (5,) and env.reward(s).dtype == torch.float32
    assert env.reward_area(s).shape == (5,) and env.reward_area(s).dtype == torch.int64
    assert env.descriptor(s).shape == (5, 2)
    assert env.done(s).shape == (5,) and env.done(s).dtype == torch.bool
    assert not env.done(s).any()
    assert torch.equal(env.observe(env.reset(2)), torch.zeros(2, 6))
    assert spec.options["episode_length"] == 50 and spec.to_dict()["name"] == "point-trap"


def test_free_flight_is_exact_constant_acceleration(env):
    s, _, path = rollout(env, constant((0.5, -1.0), steps=10))
    for k in (1, 10):
        t = k * DT
        expected = [0.5 * ACCELERATION * t * t / 2, -ACCELERATION * t * t / 2]
        assert path[k - 1, 0].tolist() == pytest.approx(expected, rel=1e-5)
    assert s.vel[0].tolist() == pytest.approx([0.5 * ACCELERATION * 0.4, -ACCELERATION * 0.4])
    assert env.done(s).tolist() == [False]
    s, _, _ = rollout(env, constant((0.0, 0.0), steps=40), s)
    assert env.done(s).tolist() == [True]


def test_actions_are_clipped(env):
    a, _, _ = rollout(env, constant((5.0, -3.0), steps=20))
    b, _, _ = rollout(env, constant((1.0, -1.0), steps=20))
    assert torch.equal(a.pos, b.pos) and torch.equal(a.vel, b.vel)


def test_straight_push_is_trapped(env):
    s, ret, path = rollout(env, constant((1.0, 0.0)))
    stop = WALLS[2][0] - ARROW[1]  # the arrow's tip against the back wall: x = 12.3
    assert path[:, 0, 0].max().item() <= stop
    assert s.pos[0].tolist() == pytest.approx([stop - SKIN, 0.0], abs=1e-5)
    assert s.vel[0].tolist() == [0.0, 0.0]
    assert path[21:, 0, 0].eq(s.pos[0, 0]).all()  # blocked from step 22 on
    # the trap's local optimum (the authors' README: about -780)
    assert ret.item() == pytest.approx(-799.53, abs=0.05)
    # without the arrow the disc reaches the back wall
    disc = PointTrap(arrow=False)
    s, ret, _ = rollout(disc, constant((1.0, 0.0)))
    assert s.pos[0, 0].item() == pytest.approx(WALLS[2][0] - BODY_RADIUS - SKIN, abs=1e-5)
    assert ret.item() == pytest.approx(-773.21, abs=0.05)


def test_going_around_the_wall_reaches_the_goal(env):
    actions = torch.tensor([a for a in AROUND for _ in range(10)])[:, None]
    s, ret, path = rollout(env, actions)
    assert ret.item() > -560  # far better than the trap's -799.5
    assert env.reward_area(s).tolist() == [0]
    assert torch.hypot(s.pos[0, 0] - 25, s.pos[0, 1]).item() < 2.0
    assert not overlaps_walls(path).any()
    passing = (path[:, 0, 0] > 12) & (path[:, 0, 0] < 14)  # alongside the arm
    assert passing.any() and (path[passing, 0, 1] < -2.8).all()  # below the lower arm


def test_slides_along_walls_into_the_inner_corner(env):
    s = env.make_state(torch.tensor([[11.0, -1.0]]))
    s, _, path = rollout(env, constant((1.0, 1.0), steps=30), s)
    # the arrow stops at the back wall, the disc under the upper arm (y = 1.7 - 0.5)
    assert s.pos[0].tolist() == pytest.approx([12.3 - SKIN, 1.2 - SKIN], abs=1e-5)
    assert s.vel[0].tolist() == [0.0, 0.0]
    assert not overlaps_walls(path).any()


@pytest.mark.parametrize(
    "start, vel, stop",
    [
        ((11.0, 0.0), (500.0, 0.0), (12.3 - SKIN, 0.0)),  # into the U
        ((20.0, 0.5), (-500.0, 0.0), (14.8 + SKIN, 0.5)),  # onto the back wall from behind
        ((13.0, 10.0), (0.0, -500.0), (13.0, 2.8 + SKIN)),  # onto the upper arm from above
        ((13.0, 0.0), (0.0, -500.0), (13.0, -1.2 + SKIN)),  # onto the lower arm from inside
    ],
)
def test_fast_points_never_tunnel(env, start, vel, stop):
    s = env.make_state(torch.tensor([start]), torch.tensor([vel]))
    s = env.step(s, torch.zeros(1, 2))
    assert s.pos[0].tolist() == pytest.approx(stop, abs=1e-5)


def test_random_pushes_never_enter_walls():
    env = PointTrap()
    gen = torch.Generator().manual_seed(0)
    batch = 256
    # starts around the wall, random velocities, random steady pushes plus noise
    start = torch.rand(batch, 2, generator=gen) * torch.tensor([10.0, 10.0]) + torch.tensor(
        [8.0, -5.0]
    )
    start = start[~overlaps_walls(start)]
    vel = (torch.rand(len(start), 2, generator=gen) * 2 - 1) * 40
    s = env.make_state(start, vel)
    steady = torch.rand(len(start), 2, generator=gen) * 2 - 1
    for _ in range(30):
        noise = torch.rand(len(start), 2, generator=gen) * 2 - 1
        prev = s.pos
        s = env.step(s, steady + 0.5 * noise)
        assert not overlaps_walls(s.pos).any()
        # never crossed the back wall's line inside the U's height
        crossed = (prev[:, 0] < 13.7) & (s.pos[:, 0] > 14.3) & (prev[:, 1].abs() < 1.2)
        assert not (crossed & (s.pos[:, 1].abs() < 1.2)).any()


def test_reward_and_reward_area(env):
    pos = torch.tensor([[0.0, 0.0], [25.0, 0.0], [22.0, 3.5], [26.0, -1.5], [12.3, 0.0]])
    s = env.make_state(pos)
    expected = [-math.hypot(25 - x, y) for x, y in pos.tolist()]
    assert env.reward(s).tolist() == pytest.approx(expected)
    assert env.reward_area(s).tolist() == [-1, 0, -1, 0, -1]
    assert torch.equal(env.descriptor(s), pos)
    assert env.goal_circles() == [(25.0, 0.0, 2.0)]
    assert PointTrap(goal_radius=5.0).reward_area(s).tolist() == [-1, 0, 0, 0, -1]


def test_descriptor_bounds_cover_the_reachable_region(env):
    low, high = env.spec.descriptor_low, env.spec.descriptor_high
    s, _, _ = rollout(env, constant((-1.0, 1.0)))
    assert s.pos[0].tolist() == pytest.approx([-ACCELERATION * 2, ACCELERATION * 2], rel=1e-5)
    assert low[0] < s.pos[0, 0] and s.pos[0, 1] < high[1]
    assert low == (-72.0, -72.0) and high == (72.0, 72.0)


def test_deterministic_and_batch_invariant():
    env = PointTrap()
    gen = torch.Generator().manual_seed(1)
    batch, steps = 24, 50
    # steady pushes towards +x (many wall contacts) plus noise
    steady = torch.rand(1, batch, 2, generator=gen) * torch.tensor([1.0, 0.6]) + torch.tensor(
        [0.0, -0.3]
    )
    actions = steady + 0.3 * (torch.rand(steps, batch, 2, generator=gen) * 2 - 1)
    a, ret_a, _ = rollout(env, actions)
    b, ret_b, _ = rollout(env, actions)
    assert torch.equal(a.pos, b.pos) and torch.equal(ret_a, ret_b)
    assert (a.pos[:, 0] > 11).sum() > 5  # several rows ended against the wall
    for i in (0, 7, 23):
        alone, ret_i, _ = rollout(env, actions[:, i : i + 1])
        assert torch.equal(alone.pos, a.pos[i : i + 1]), i
        assert torch.equal(alone.vel, a.vel[i : i + 1]), i
        assert torch.equal(ret_i, ret_a[i : i + 1]), i


def test_evaluator_sums_the_dense_reward():
    env = PointTrap()
    policy = SereneMLP(serene_sizes(6, 2))
    genomes = torch.randn(12, policy.genome_size, generator=torch.Generator().manual_seed(2))
    out = LocalEvaluator(env, policy).evaluate(genomes)
    small = LocalEvaluator(env, policy).evaluate(genomes[:5])
    for name in ("fitness", "reward_area", "descriptor", "final_obs"):
        assert torch.equal(getattr(small, name), getattr(out, name)[:5]), name
    # the same episodes by hand: the fitness is the sum of the per-step rewards
    layers = policy.unflatten(genomes)
    s, ret = env.reset(12), torch.zeros(12)
    for _ in range(env.spec.episode_length):
        s = env.step(s, policy.forward(layers, env.observe(s)))
        ret += env.reward(s)
    assert torch.allclose(out.fitness, ret)
    assert torch.equal(out.descriptor, s.pos)
    assert (out.fitness < 0).all() and out.fitness.std() > 1


def test_reset_noise_is_shared_and_seeded():
    env = PointTrap(reset_noise=0.1)
    a = env.reset(3, generator=torch.Generator().manual_seed(0))
    b = env.reset(3, generator=torch.Generator().manual_seed(0))
    obs = env.observe(a)
    assert torch.equal(obs, env.observe(b))
    assert torch.equal(obs, obs[:1].expand(3, 6)) and (obs != 0).all()
    assert (obs[:, :3].abs() <= 0.1).all()
    s = env.step(a, torch.zeros(3, 2))
    assert s.heading.tolist() == pytest.approx((a.heading + a.spin * DT).tolist())


def _colour_mask(img, rgb):
    return (img == torch.tensor(rgb, dtype=torch.uint8)).all(-1)


def test_render(env):
    s = env.make_state(torch.tensor([[0.0, 0.0], [20.0, -10.0], [100.0, 0.0]]))
    img = env.render(s)
    assert img.shape == (3, 64, 64, 3) and img.dtype == torch.uint8
    x0, x1, y0, y1 = VIEW
    pixel = (x1 - x0) / 64
    for i, (x, y) in enumerate([(0.0, 0.0), (20.0, -10.0)]):
        rows, cols = torch.nonzero(_colour_mask(img[i], BODY_COLOUR), as_tuple=True)
        assert len(rows) > 0
        cx = x0 + (cols.float().mean().item() + 0.5) * pixel
        cy = y1 - (rows.float().mean().item() + 0.5) * pixel
        assert (cx, cy) == pytest.approx((x, y), abs=pixel)
        assert _colour_mask(img[i], ARROW_COLOUR).any()
    assert not _colour_mask(img[2], BODY_COLOUR).any()  # outside the view
    walls = (img[2] == WALL_GREY).all(-1)
    rows, cols = torch.nonzero(walls, as_tuple=True)
    xs = x0 + (cols.float() + 0.5) * pixel
    assert xs.min().item() == pytest.approx(12.0, abs=pixel) and xs.max() <= 14.3 + pixel
    assert _colour_mask(img[2], GOAL_COLOUR).any()
    background = env.background(100)
    assert background.shape == (100, 100, 3) and (background == WALL_GREY).all(-1).any()
