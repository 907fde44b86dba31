"""Redundant arm: the authors' ArmEnv rules (replayed against a scalar transcription of them),
integration, illegal updates, reward, the evaluator cut, batching."""

import math

import pytest
import torch

import envs
from envs.redundant_arm import (
    ARM_COLOUR,
    BASE,
    GOALS,
    LINK,
    N_JOINTS,
    STAX_CUT,
    TIP_COLOUR,
    WALL_GREY,
    RedundantArm,
    start_joints,
)
from qd.evaluation import LocalEvaluator
from qd.policies import SereneMLP, serene_sizes

FAST, OUTSIDE, WALL, SELF = range(4)
START_TIP = (0.306472410833382, 0.6917421355612726)


@pytest.fixture(scope="module")
def env():
    return RedundantArm()


# -- an independent scalar transcription of the original ArmEnv (GPaolo/SERENE, gym_redarm) -----
# Written from the original's rules, one arm, float64, its loops as they are; it shares nothing
# with envs/redundant_arm.py.
REF_DT = 0.01
REF_WALLS = (  # wall_setting 8 as (x, y, w, h): cW = 0.2, wW = 0.02
    (0.5 - 0.5 * 0.02, 0.0, 0.02, 0.2),
    (0.5 - 0.5 * 0.02, 1 - 0.2, 0.02, 0.2),
    (0.0, 0.5 - 0.5 * 0.02, 0.2, 0.02),
    (1 - 0.2, 0.5 - 0.5 * 0.02, 0.2, 0.02),
)


def ref_coordinates(angles):
    heading, x, y = math.pi / 2, 0.5, 0.5
    points = [(x, y)]
    for a in angles:
        heading += a
        x += 0.05 * math.cos(heading)
        y += 0.05 * math.sin(heading)
        points.append((x, y))
    return points


def ref_broken_rule(new, old, speeds):
    """The first rule the update ``old -> new`` breaks (None if legal), in the original's order."""
    points, before = ref_coordinates(new), ref_coordinates(old)
    (x1, y1), (x0, y0) = points[-1], before[-1]
    if math.hypot(x1 - x0, y1 - y0) / 2 + speeds[-1] > 1.0:
        return "fast"
    if min(min(p) for p in points) < 0 or max(max(p) for p in points) >= 1:
        return "outside"
    for wx, wy, ww, wh in REF_WALLS:
        for px, py in points:
            if wx < px < wx + ww and wy < py < wy + wh:
                return "wall"
    radius = 0.05 * 0.95
    points = sorted(points)  # by x
    for i in range(len(points)):
        for j in range(i + 1, len(points)):
            dx, dy = abs(points[i][0] - points[j][0]), abs(points[i][1] - points[j][1])
            if dx > radius:
                break
            if dx + dy < radius:
                return "self"
    return None


def ref_episode(action_at, steps=250):
    """Tips after every step, the step (1-based) at which the episode stops (None if it runs
    to the end), the rule and which of the two updates broke it."""
    angles = [4 * math.pi / 20 + (math.pi / 20 - 4 * math.pi / 20) * i / 19 for i in range(20)]
    speeds = [0.0] * 20
    tips = []
    for t in range(steps):
        action = action_at(t)
        for update in range(2):
            new = [
                a / 2 * REF_DT**2 + v * REF_DT + q
                for a, v, q in zip(action, speeds, angles, strict=True)
            ]
            rule = ref_broken_rule(new, angles, speeds)
            if rule is not None:  # rejected; the episode is over
                tips.append(ref_coordinates(angles)[-1])
                return tips, t + 1, (rule, update)
            speeds = [(n - q) / REF_DT for n, q in zip(new, angles, strict=True)]
            angles = new
        tips.append(ref_coordinates(angles)[-1])
    return tips, None, None


OUT_OF_ARENA = [0.68, 0.91, 0.96, 0, 0, 0.81, 0, 0, 0, -0.23]
OUT_OF_ARENA += [0, -0.81, 0, -0.91, 0, 0, 0, 0, -0.99, -0.33]
SEQUENCES = {  # name: (action at step t, expected stop step, rule, update), checked by hand
    "still": (lambda t: [0.0] * 20, None, None),
    "spin base": (lambda t: [1.0] + [0.0] * 19, None, None),
    "last joint": (lambda t: [0.0] * 19 + [1.0], 101, ("fast", 0)),
    "curl": (lambda t: [1.0] * 20, 24, ("self", 1)),
    "waves": (lambda t: [math.sin(0.05 * t + k) for k in range(20)], 102, ("self", 0)),
    "unfold": (lambda t: [0.3] + [-1.0] * 10 + [0.0] * 9, 52, ("wall", 1)),
    "middle joint": (lambda t: [0.0] * 10 + [-1.0] + [0.0] * 9, 123, ("wall", 0)),
    "out": (lambda t: OUT_OF_ARENA, 82, ("outside", 0)),
}


def test_replay_matches_the_original_rules():
    env = RedundantArm()
    names = list(SEQUENCES)
    s = env.reset(len(names))
    tips, stops = [], [None] * len(names)
    for t in range(env.spec.episode_length):
        actions = torch.tensor([SEQUENCES[n][0](t) for n in names], dtype=torch.float32)
        s = env.step(s, actions)
        tips.append(s.tip.clone())
        for row in s.stopped.nonzero().flatten().tolist():
            stops[row] = stops[row] or t + 1
    for row, name in enumerate(names):
        action_at, stop, rule = SEQUENCES[name]
        ref_tips, ref_stop, ref_rule = ref_episode(action_at)
        assert (ref_stop, ref_rule) == (stop, rule), name  # the reference reproduces the table
        assert stops[row] == stop, name
        for t, tip in enumerate(ref_tips):
            assert tips[t][row].tolist() == pytest.approx(tip, abs=2e-6), (name, t)
        if stop is not None:  # frozen after the stop
            assert torch.equal(tips[-1][row], tips[stop - 1][row]), name
    assert s.stopped.tolist() == [stop is not None for _, stop, _ in SEQUENCES.values()]
    assert env.done(s).all()


def test_start_posture(env):
    s = env.reset(4)
    # the angles add up to 2.5 pi: the last link points along -x, at (0.30647, 0.69174)
    assert sum(start_joints()) == pytest.approx(2.5 * math.pi)
    assert start_joints()[0] == pytest.approx(math.pi / 5) and start_joints()[-1] == pytest.approx(
        math.pi / 20
    )
    assert s.tip[0].tolist() == pytest.approx(START_TIP, abs=1e-6)
    points = env.points(s.joints)
    assert points[0, 0].tolist() == list(BASE)
    assert points[0, 1].tolist() == pytest.approx(
        [0.5 - LINK * math.sin(math.pi / 5), 0.5 + LINK * math.cos(math.pi / 5)], abs=1e-7
    )
    assert not env.violations(points, s.tip, s.speeds[:, -1]).any()
    assert torch.equal(env.descriptor(s), s.tip)
    obs = env.observe(s)
    assert obs.shape == (4, N_JOINTS)
    assert obs[0].tolist() == pytest.approx([q / math.pi for q in start_joints()], abs=1e-6)
    assert obs[0, 0].item() == pytest.approx(0.2) and obs[0, -1].item() == pytest.approx(0.05)
    assert not env.done(s).any()


def test_zero_action_keeps_the_arm_still(env):
    s0 = env.reset(3)
    s = s0
    for _ in range(50):
        s = env.step(s, torch.zeros(3, N_JOINTS))
    assert torch.equal(s.joints, s0.joints) and torch.equal(s.tip, s0.tip)
    assert (s.speeds == 0).all() and not env.done(s).any() and s.t.item() == 50


def test_constant_action_integration(env):
    # each update: angle += a dt^2/2 + v dt, then v += a dt/2 (dt = 0.01, 2 updates per step);
    # after m updates v = m a dt/2 and the angle moved a dt^2/2 * m (m + 1)/2
    s0 = env.reset(1)
    action = torch.linspace(-0.3, 0.3, N_JOINTS)[None]
    action[0, 0] = 5.0  # clipped to 1
    a = action.clamp(-1, 1)
    s = env.step(s0, action)
    torch.testing.assert_close(s.speeds, a * 0.01, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(s.joints, s0.joints + 1.5e-4 * a, rtol=0, atol=3e-7)
    assert torch.allclose(s.tip, env.points(s.joints)[:, -1])
    for _ in range(39):  # 40 steps = 80 updates
        s = env.step(s, action)
    assert not s.stopped.any()
    torch.testing.assert_close(s.speeds, a * 0.4, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(s.joints - s0.joints, a * 0.5e-4 * 80 * 81 / 2, rtol=1e-4, atol=3e-7)


def test_no_angle_clamp_and_unclipped_observation(env):
    # the base joint at full acceleration for 250 steps (500 updates) turns the whole arm by
    # 1e-4 / 2 * 500 * 501 / 2 = 6.2625 rad, past pi, without any illegal update
    s = env.reset(1)
    action = torch.zeros(1, N_JOINTS)
    action[0, 0] = 1.0
    for _ in range(250):
        s = env.step(s, action)
    assert not s.stopped.item() and env.done(s).item()
    turn = 6.2625
    assert s.joints[0, 0].item() == pytest.approx(math.pi / 5 + turn, abs=1e-5)
    assert env.observe(s)[0, 0].item() == pytest.approx((math.pi / 5 + turn) / math.pi, abs=1e-5)
    dx, dy = START_TIP[0] - 0.5, START_TIP[1] - 0.5
    c, sn = math.cos(turn), math.sin(turn)
    expected = (0.5 + c * dx - sn * dy, 0.5 + sn * dx + c * dy)
    assert s.tip[0].tolist() == pytest.approx(expected, abs=2e-6)
    assert s.speeds[0, 0].item() == pytest.approx(2.5, rel=1e-5)


def test_speed_rule_rejects_the_update(env):
    # accelerating the last joint alone: after 100 steps (200 updates) it turns at exactly
    # 1 rad/s, so the first update of step 101 has 1 + |tip move|/2 > 1 and is rejected
    s = env.reset(1)
    action = torch.zeros(1, N_JOINTS)
    action[0, -1] = 1.0
    for _ in range(100):
        s = env.step(s, action)
    assert not s.stopped.item()
    assert s.speeds[0, -1].item() == pytest.approx(1.0, abs=1e-6)
    after = env.step(s, action)
    assert after.stopped.item() and env.done(after).item()
    for name in ("joints", "speeds", "tip"):
        assert torch.equal(getattr(after, name), getattr(s, name)), name


def test_second_update_rejected_keeps_the_first():
    # "curl" stops on the second update of step 24: the first one (update 47) is kept, so every
    # joint turns at 47 * 0.005 rad/s
    env = RedundantArm()
    s = env.reset(1)
    for _ in range(24):
        s = env.step(s, torch.ones(1, N_JOINTS))
    assert s.stopped.item()
    torch.testing.assert_close(s.speeds, torch.full((1, N_JOINTS), 0.235), rtol=1e-5, atol=0)
    shift = 0.5e-4 * 47 * 48 / 2
    expected = torch.tensor(start_joints())[None] + shift
    torch.testing.assert_close(s.joints, expected, rtol=0, atol=1e-6)


def _spread_points():
    """21 joint points on a grid 0.06 apart (legal: no rule broken), as [1, 21, 2]."""
    return torch.tensor([[(0.3 + 0.06 * (k % 5), 0.3 + 0.06 * (k // 5)) for k in range(21)]])


@pytest.mark.parametrize(
    "point, rule",
    [
        ((0.49, 0.1), None),  # on the south wall's face: only strictly inside counts
        ((0.495, 0.1), WALL),
        ((0.2, 0.5), None),  # the west wall's end
        ((0.19, 0.5), WALL),
        ((0.85, 0.505), WALL),
        ((0.0, 0.7), None),  # the arena is [0, 1)
        ((-1e-4, 0.7), OUTSIDE),
        ((0.999, 0.7), None),
        ((1.0, 0.7), OUTSIDE),
        ((0.7, 1.0), OUTSIDE),
        ((0.54 + 0.024, 0.48 + 0.024), None),  # L1 0.048 from (0.54, 0.48), Euclid 0.034
        ((0.54 + 0.03, 0.48 + 0.017), SELF),  # L1 0.047 < 0.95 * 0.05
    ],
)
def test_position_rules(env, point, rule):
    points = _spread_points()
    points[0, 3] = torch.tensor(point)
    broken = env.violations(points, points[:, -1], torch.zeros(1))[0]
    assert broken.tolist() == [k == rule for k in range(4)]


@pytest.mark.parametrize(
    "move, last_speed, fast",
    [
        (0.02, 0.985, False),  # 0.02 / 2 + 0.985 = 0.995
        (0.02, 0.995, True),  # 1.005
        (1.0, -0.6, False),  # a negative speed offsets the move: 0.5 - 0.6
        (1.0, 0.6, True),
    ],
)
def test_speed_rule(env, move, last_speed, fast):
    points = _spread_points()
    previous = points[:, -1] - torch.tensor([[move, 0.0]])
    broken = env.violations(points, previous, torch.tensor([last_speed]))[0]
    assert broken.tolist() == [fast, False, False, False]


def joints_from_directions(directions):
    """Relative joint angles of links with the given absolute directions (link 0 is measured
    from +y, the original's start heading)."""
    d = torch.tensor(directions, dtype=torch.float64)
    rel = torch.cat([d[:1] - math.pi / 2, d[1:] - d[:-1]])
    return torch.remainder(rel + math.pi, 2 * math.pi) - math.pi


def zigzag(phi, reach, links=N_JOINTS):
    """Link directions of a zigzag from the base along ``phi`` whose end is ``reach`` away."""
    alpha = math.acos(reach / (links * LINK))
    return [phi + alpha if k % 2 == 0 else phi - alpha for k in range(links)]


def state_at(env, directions, speeds=None):
    joints = joints_from_directions(directions).float()[None]
    return env.make_state(joints, None if speeds is None else torch.tensor([speeds]))


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
        assert env.reward_area(s).item() == goal
        assert env.reward(s).item() == 0.0  # not at the horizon
        s.t = torch.tensor(env.spec.episode_length)
    assert env.reward(at).item() == pytest.approx(1.0, abs=1e-4)
    assert env.reward(half).item() == pytest.approx(0.5, abs=1e-4)
    assert env.reward_area(env.reset(1)).item() == -1
    assert env.reward(env.reset(1)).item() == 0.0


def _still_and_kicked(env):
    """Two arms at goal 1's centre, the second with its last joint at 20 rad/s (its first
    update breaks the speed rule)."""
    joints = joints_from_directions(_goal_pose(1)).float()[None].repeat(2, 1)
    speeds = torch.zeros(2, N_JOINTS)
    speeds[1, -1] = 20.0
    s = env.make_state(joints, speeds)
    assert not env.violations(env.points(joints), s.tip, torch.zeros(2)).any()
    return s


def test_rewarded_at_the_horizon_even_when_stopped_early(env):
    s = _still_and_kicked(env)
    for t in range(env.spec.episode_length):
        assert env.reward(s).tolist() == [0.0, 0.0]
        s = env.step(s, torch.zeros(2, N_JOINTS))
        if t == 0:
            assert s.stopped.tolist() == [False, True]
    assert env.done(s).all()
    assert env.reward(s).tolist() == pytest.approx([1.0, 1.0], abs=1e-4)
    assert env.reward_area(s).tolist() == [1, 1]


def test_evaluator_cut_rewards_only_rows_that_stopped():
    # STAX's evaluator ends the loop after 100 steps; the env (horizon 250) has only given a
    # reward to episodes it ended itself, on an illegal update
    env = RedundantArm(evaluator_cut=STAX_CUT)
    assert env.spec.episode_length == 100 and env.spec.options["evaluator_cut"] == 100
    assert env.spec.options["episode_length"] == 250
    s = _still_and_kicked(env)
    for _ in range(100):
        s = env.step(s, torch.zeros(2, N_JOINTS))
    assert env.done(s).all() and s.stopped.tolist() == [False, True]
    assert env.reward(s).tolist() == pytest.approx([0.0, 1.0], abs=1e-4)
    assert env.reward_area(s).tolist() == [1, 1]
    assert RedundantArm(evaluator_cut=400).spec.episode_length == 250


def test_stopped_rows_stay_frozen_while_others_move(env):
    s0 = env.reset(2)
    kick = torch.zeros(2, N_JOINTS)
    kick[0, -1] = 20.0  # row 0 breaks the speed rule at once, row 1 is at rest
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
    for name in ("joints", "speeds", "tip"):
        assert torch.equal(getattr(after, name), getattr(s, name)), name


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
    assert envs.make("redundant-arm", evaluator_cut=100).spec.episode_length == 100
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
    # under the original's rules nearly every random controller ends on an illegal update
    # before the horizon (before issue 17 some ran to the end)
    assert final.stopped.float().mean() > 0.9
