"""Redundant arm: kinematics, integration, illegal moves, reward, batching."""

import math

import pytest
import torch

import envs
from envs.redundant_arm import (
    ARM_COLOUR,
    BASE,
    DT,
    GOALS,
    LINK,
    N_JOINTS,
    TIP_COLOUR,
    WALL_GREY,
    RedundantArm,
    spiral_joints,
)
from qd.evaluation import LocalEvaluator
from qd.policies import SereneMLP, serene_sizes

FAST, OUTSIDE, WALL, SELF = range(4)


@pytest.fixture(scope="module")
def env():
    return RedundantArm()


def joints_from_directions(directions):
    """Relative joint angles of links with the given absolute directions."""
    d = torch.tensor(directions, dtype=torch.float64)
    rel = torch.cat([d[:1], d[1:] - d[:-1]])
    return torch.remainder(rel + math.pi, 2 * math.pi) - math.pi


def zigzag(phi, reach, links=N_JOINTS, cw=False):
    """Link directions of a zigzag from the base along ``phi`` whose end is ``reach`` away;
    every other joint point lies on the ray, the others on its counter-clockwise side (``cw``:
    clockwise side)."""
    alpha = math.acos(reach / (links * LINK))
    first, second = (phi - alpha, phi + alpha) if cw else (phi + alpha, phi - alpha)
    return [first if k % 2 == 0 else second for k in range(links)]


def state_at(env, directions, speeds=None):
    joints = joints_from_directions(directions).float()[None]
    return env.make_state(joints, None if speeds is None else torch.tensor([speeds]))


def one_step(env, state, actions=None):
    """Step and return (new state, violations of the attempted move)."""
    actions = torch.zeros_like(state.joints) if actions is None else actions
    h = DT / env.substeps
    joints, speeds = state.joints, state.speeds
    for _ in range(env.substeps):  # the attempted move, to ask which rule it breaks
        speeds = speeds + h * env.acceleration * actions.clamp(-1, 1)
        joints = joints + h * speeds
    return env.step(state, actions), env.violations(env.points(joints), state.tip)


def assert_frozen(new, old):
    for name in ("joints", "speeds", "tip"):
        assert torch.equal(getattr(new, name), getattr(old, name)), name


def test_initial_spiral_is_legal_and_compact(env):
    s = env.reset(4)
    points = env.points(s.joints)
    assert not env.violations(points, s.tip).any()
    assert ((points > 0) & (points < 1)).all()
    radius = torch.linalg.vector_norm(points - torch.tensor(BASE), dim=-1)
    assert radius.max() < 0.15  # curled around the base, inside the gap between the walls
    assert torch.allclose(s.tip, points[:, -1]) and torch.equal(env.descriptor(s), s.tip)
    obs = env.observe(s)
    assert obs.shape == (4, N_JOINTS) and obs.abs().max() <= 1
    assert obs[0].tolist() == pytest.approx([q / math.pi for q in spiral_joints()], abs=1e-6)
    assert not env.done(s).any()


def test_zero_action_keeps_the_arm_still(env):
    s0 = env.reset(3)
    s = s0
    for _ in range(50):
        s = env.step(s, torch.zeros(3, N_JOINTS))
    assert torch.equal(s.joints, s0.joints) and torch.equal(s.tip, s0.tip)
    assert (s.speeds == 0).all() and not env.done(s).any() and s.t.item() == 50


def test_constant_action_integrates_semi_implicit_euler(env):
    s0 = env.reset(1)
    action = torch.linspace(-0.3, 0.3, N_JOINTS)[None]
    action[0, 0] = 5.0  # clipped to 1
    s = env.step(s0, action)
    a = env.acceleration * action.clamp(-1, 1)
    h = DT / 2  # two sub-steps: v1 = h a, q1 = h^2 a, v2 = 2 h a, q2 = q1 + h v2 = 3 h^2 a
    torch.testing.assert_close(s.speeds, 2 * h * a, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(s.joints, s0.joints + 3 * h * h * a, rtol=0, atol=3e-7)
    assert not s.stopped.any()
    assert torch.allclose(s.tip, env.points(s.joints)[:, -1])
    for _ in range(39):  # after n steps: v = 2 n h a, q = q0 + h^2 a (1 + 2 + ... + 2n)
        s = env.step(s, action)
    torch.testing.assert_close(s.speeds, 80 * h * a, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(s.joints - s0.joints, 40 * 81 * h * h * a, rtol=1e-4, atol=3e-7)
    assert not s.stopped.any()


def test_end_effector_too_fast(env):
    s0 = env.reset(1)
    # spinning the whole spiral about the base: the tip (0.131 from the base) moves 0.013 > 0.01
    fast = env.make_state(s0.joints, torch.tensor([[10.0] + [0.0] * 19]))
    s, broken = one_step(env, fast)
    assert broken[0].tolist() == [True, False, False, False]
    assert s.stopped.item() and env.done(s).item()
    assert_frozen(s, fast)
    slow = env.make_state(s0.joints, torch.tensor([[5.0] + [0.0] * 19]))  # moves 0.0065: legal
    s, broken = one_step(env, slow)
    assert not broken.any() and not s.stopped.item()
    assert s.joints[0, 0].item() == pytest.approx(0.05, rel=1e-5)


def test_leaving_the_square(env):
    # a zigzag towards the corner (1, 0) ending just inside it, turned counter-clockwise
    s0 = state_at(env, zigzag(-math.pi / 4, 0.705), [1.2] + [0.0] * 19)
    assert not env.violations(env.points(s0.joints), s0.tip).any()
    assert s0.tip[0, 0] > 0.99
    s, broken = one_step(env, s0)
    assert broken[0].tolist() == [False, True, False, False]
    assert s.stopped.item() and env.done(s).item()
    assert_frozen(s, s0)


def test_crossing_a_wall(env):
    # a zigzag just below the east bar (y = 0.5, x in [0.75, 0.95]) turned up across it
    s0 = state_at(env, zigzag(-0.01, 0.35, cw=True), [2.0] + [0.0] * 19)
    assert not env.violations(env.points(s0.joints), s0.tip).any()
    s, broken = one_step(env, s0)
    assert broken[0].tolist() == [False, False, True, False]
    assert s.stopped.item() and env.done(s).item()
    assert_frozen(s, s0)


def test_self_collision(env):
    # links 17-19 nearly close a triangle; turning the last joint makes link 19 cross the chain
    theta = 3 * math.pi / 4  # along the zigzag of links 0-16
    tail = [theta, theta + 2 * math.pi / 3, theta + 4 * math.pi / 3 - 0.05]
    s0 = state_at(env, zigzag(theta, 0.2, links=17) + tail, [0.0] * 19 + [10.0])
    assert not env.violations(env.points(s0.joints), s0.tip).any()
    s, broken = one_step(env, s0)
    assert broken[0].tolist() == [False, False, False, True]
    assert s.stopped.item() and env.done(s).item()
    assert_frozen(s, s0)


def test_straight_links_never_collide(env):
    # collinear links (a straight arm) must not count as crossing, whatever the rounding
    angles = torch.linspace(0, 2 * math.pi, 4001)[:, None]
    joints = torch.cat([angles, torch.zeros(4001, N_JOINTS - 1)], 1)
    points = env.points(joints)
    broken = env.violations(points, points[:, -1])
    assert not broken[:, WALL].any() and not broken[:, SELF].any()


def test_stopped_rows_stay_frozen_while_others_move(env):
    s0 = env.reset(2)
    kick = torch.zeros(2, N_JOINTS)
    kick[0, 0] = 20.0  # row 0 breaks the speed limit at once, row 1 is at rest
    s = env.make_state(s0.joints, kick)
    stopped = env.step(s, torch.zeros(2, N_JOINTS))
    assert stopped.stopped.tolist() == [True, False]
    gen = torch.Generator().manual_seed(0)
    later = stopped
    for _ in range(20):
        later = env.step(later, torch.rand(2, N_JOINTS, generator=gen) * 0.2 - 0.1)
    for name in ("joints", "speeds", "tip"):
        assert torch.equal(getattr(later, name)[0], getattr(stopped, name)[0])
    assert not torch.equal(later.joints[1], stopped.joints[1])  # the other row moved
    assert later.stopped.tolist() == [True, False] and env.done(later).tolist() == [True, False]


def test_steps_after_the_horizon_change_nothing():
    env = RedundantArm(episode_length=5)
    s = env.reset(1)
    for _ in range(5):
        s = env.step(s, torch.ones(1, N_JOINTS) * 0.1)
    assert env.done(s).item() and not s.stopped.item()
    after = env.step(s, torch.ones(1, N_JOINTS))
    assert_frozen(after, s)


def _goal_pose(goal, offset=0.0):
    """Link directions of a zigzag ending at the goal centre (moved ``offset`` towards the base)."""
    gx, gy, _ = GOALS[goal]
    dx, dy = gx - BASE[0], gy - BASE[1]
    return zigzag(math.atan2(dy, dx), math.hypot(dx, dy) - offset)


@pytest.mark.parametrize("goal", range(len(GOALS)))
def test_reward_at_goal_centre_and_half_radius(env, goal):
    radius = GOALS[goal][2]
    at = state_at(env, _goal_pose(goal))
    half = state_at(env, _goal_pose(goal, radius / 2))
    assert env.descriptor(at)[0].tolist() == pytest.approx(GOALS[goal][:2], abs=1e-5)
    for s in (at, half):
        assert not env.violations(env.points(s.joints), s.tip).any()
        assert env.reward_area(s).item() == goal
        assert env.reward(s).item() == 0.0  # not at the horizon
        s.t = torch.tensor(env.spec.episode_length)
    assert env.reward(at).item() == pytest.approx(1.0, abs=1e-4)
    assert env.reward(half).item() == pytest.approx(0.5, abs=1e-4)
    assert env.reward_area(env.reset(1)).item() == -1
    assert env.reward(env.reset(1)).item() == 0.0


def test_rewarded_at_the_horizon_even_when_stopped_early(env):
    still = state_at(env, _goal_pose(1))
    kicked = state_at(env, _goal_pose(1), [20.0] + [0.0] * 19)  # stops at the first step
    s = env.make_state(torch.cat([still.joints, kicked.joints]))
    s.speeds = torch.cat([still.speeds, kicked.speeds])
    for t in range(env.spec.episode_length):
        assert env.reward(s).tolist() == [0.0, 0.0]
        s = env.step(s, torch.zeros(2, N_JOINTS))
        if t == 0:
            assert s.stopped.tolist() == [False, True]
    assert env.done(s).all()
    assert env.reward(s).tolist() == pytest.approx([1.0, 1.0], abs=1e-4)
    assert env.reward_area(s).tolist() == [1, 1]


def test_render_background_goals(env):
    s = env.reset(3)
    img = env.render(s)
    assert img.shape == (3, 64, 64, 3) and img.dtype == torch.uint8
    arm = (img == torch.tensor(ARM_COLOUR, dtype=torch.uint8)).all(-1)
    assert arm.flatten(1).sum(1).min() > 40  # the spiral is drawn
    assert not arm[:, :, :12].any() and not arm[:, :, 52:].any()  # ... near the centre only
    assert (img == torch.tensor(TIP_COLOUR, dtype=torch.uint8)).all(-1).any()
    assert (img == WALL_GREY).all(-1).flatten(1).sum(1).min() > 40  # the wall bars
    moved = state_at(env, _goal_pose(0))
    arm_moved = (env.render(moved) == torch.tensor(ARM_COLOUR, dtype=torch.uint8)).all(-1)
    assert arm_moved[0, 40:, :30].any()  # reaching down-left (row 0 is the top)
    bg = env.background(100)
    assert bg.shape == (100, 100, 3) and bg.dtype.name == "uint8" and (bg == WALL_GREY).any()
    assert len(env.goal_circles()) == 3


def test_registry_and_spec():
    env = envs.make("redundant-arm")
    assert isinstance(env, RedundantArm) and "redundant-arm" in envs.names()
    spec = env.spec
    assert (spec.obs_size, spec.action_size, spec.descriptor_size) == (20, 20, 2)
    assert spec.grid_shape == (50, 50) and spec.reward_areas == 3
    assert spec.final_reward_only and spec.can_terminate and spec.episode_length == 250
    again = envs.make("redundant-arm", **spec.options)
    assert again.spec == spec
    assert envs.make("redundant-arm", episode_length=100).spec.episode_length == 100
    with pytest.raises(TypeError, match="redundant-arm"):
        envs.make("redundant-arm", gravity=1.0)


def test_batch_invariance(env):
    gen = torch.Generator().manual_seed(3)
    steps = 150
    actions = torch.rand(steps, 16, N_JOINTS, generator=gen) * 2 - 1
    # rows 3-15 push steadily (like random policies) plus noise: some of them stop early
    actions[:, 3:] = actions[:, 3:] * 0.2 + torch.rand(1, 13, N_JOINTS, generator=gen) * 2 - 1
    small, big = env.reset(7), env.reset(16)
    for t in range(steps):
        small = env.step(small, actions[t, :7])
        big = env.step(big, actions[t])
        for name in ("joints", "speeds", "tip", "stopped"):
            assert torch.equal(getattr(small, name), getattr(big, name)[:7]), (t, name)
    assert small.stopped.any() and not small.stopped.all()
    # the same through the evaluator with SERENE policies
    policy = SereneMLP(serene_sizes(20, 20))
    genomes = torch.randn(16, policy.genome_size, generator=gen).clamp(-5, 5)
    short = RedundantArm(episode_length=60)
    a = LocalEvaluator(short, policy).evaluate(genomes[:7])
    b = LocalEvaluator(short, policy).evaluate(genomes)
    for name in ("fitness", "reward_area", "descriptor", "final_obs"):
        assert torch.equal(getattr(a, name), getattr(b, name)[:7]), name


class _LastState(RedundantArm):
    """Keeps the last state the evaluator asked ``done`` about (it asks after every step)."""

    def done(self, state):
        self.last = state
        return super().done(state)


@pytest.fixture
def one_thread():
    """On a loaded 2-core machine, intra-op threads make this batch of 256 up to 50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_random_serene_policies_spread_out(one_thread):
    env = _LastState()
    policy = SereneMLP(serene_sizes(20, 20))
    genomes = torch.randn(256, policy.genome_size, generator=torch.Generator().manual_seed(0))
    out = LocalEvaluator(env, policy).evaluate(genomes.clamp(-5, 5))
    assert (out.descriptor.std(0) > 0.05).all()
    assert ((out.descriptor >= 0) & (out.descriptor <= 1)).all()
    cells = (out.descriptor * 50).long().clamp(0, 49)
    assert len(torch.unique(cells[:, 0] * 50 + cells[:, 1])) > 30
    final = env.last
    assert final.t.item() == env.spec.episode_length and torch.equal(final.tip, out.descriptor)
    assert final.stopped.any() and not final.stopped.all()  # some, not all, ended early
