import math

import numpy as np
import pytest
import torch

import envs
from envs.hardmaze import HardMaze
from envs.pixel_map import NO_HIT, cast_ray_reference, disk_offsets, real_to_pixel


def pose(env, x, y, theta, t=0):
    pos = torch.tensor(np.stack([x, y], 1), dtype=torch.float32)
    return env.make_state(pos, torch.tensor(np.asarray(theta), dtype=torch.float32), t=t)


def test_straight_move(walled):
    s = walled.step(pose(walled, [200.0], [300.0], [0.5]), torch.tensor([[2.0, 2.0]]))
    assert s.x.item() == pytest.approx(200 + 2 * math.cos(0.5), abs=1e-4)
    assert s.y.item() == pytest.approx(300 + 2 * math.sin(0.5), abs=1e-4)
    assert s.theta.item() == pytest.approx(0.5)


def test_pure_rotation(walled):
    s = walled.step(pose(walled, [200.0], [300.0], [0.0]), torch.tensor([[-1.0, 1.0]]))
    assert s.x.item() == pytest.approx(200.0, abs=1e-4)
    assert s.y.item() == pytest.approx(300.0, abs=1e-4)
    assert s.theta.item() == pytest.approx(0.1, abs=1e-6)  # alpha = (1 - -1) / 20


def test_arc(walled):
    # d_l = 1, d_r = 3: alpha = 0.1, r = 1/0.1 + 10 = 20; offset (cos a - 1) r, sin a r
    # rotated by theta - pi/2 = -pi/2 -> (20 sin 0.1, 20 (1 - cos 0.1)).
    s = walled.step(pose(walled, [200.0], [300.0], [0.0]), torch.tensor([[1.0, 3.0]]))
    assert s.x.item() == pytest.approx(200 + 20 * math.sin(0.1), abs=1e-4)
    assert s.y.item() == pytest.approx(300 + 20 * (1 - math.cos(0.1)), abs=1e-4)
    assert s.theta.item() == pytest.approx(0.1, abs=1e-6)


def test_actions_clipped_to_max_speed(walled):
    s = walled.step(pose(walled, [200.0], [300.0], [0.0]), torch.tensor([[10.0, 10.0]]))
    assert s.x.item() == pytest.approx(204.0, abs=1e-4)


def test_heading_wraps(walled):
    s = walled.step(pose(walled, [200.0], [300.0], [math.pi - 0.05]), torch.tensor([[-1.0, 1.0]]))
    assert s.theta.item() == pytest.approx(-math.pi + 0.05, abs=1e-5)


def _disk_clear(env, x, y):
    cx, cy = real_to_pixel(x, env.scale), real_to_pixel(y, env.scale)
    return not any(env.obstacles[cy + dy, cx + dx] for dx, dy in disk_offsets(3))


@pytest.mark.parametrize("theta, side", [(-0.3, "right"), (0.3, "left")])
def test_collision_reverts_position_keeps_heading(walled, theta, side):
    s = pose(walled, [300.0], [300.0], [theta])
    turn = torch.tensor([[1.9, 2.0]])  # nearly straight, heading changes by 0.005 per step
    collided_once = False
    for _ in range(40):
        prev = s
        s = walled.step(s, turn)
        assert _disk_clear(walled, s.x.item(), s.y.item())
        if s.bumper_left.item() or s.bumper_right.item():
            collided_once = True
            assert s.x.item() == prev.x.item() and s.y.item() == prev.y.item()
            assert s.theta.item() == pytest.approx(prev.theta.item() + 0.005, abs=1e-6)
            assert (s.bumper_right.item() == 1.0) == (side == "right")
            assert (s.bumper_left.item() == 1.0) == (side == "left")
    assert collided_once


def test_never_inside_walls_in_the_maze(maze):
    gen = torch.Generator().manual_seed(0)
    s = maze.reset(256)
    for _ in range(300):
        s = maze.step(s, torch.rand(256, 2, generator=gen) * 8 - 4)
    for x, y in zip(s.x.tolist(), s.y.tolist(), strict=True):
        assert _disk_clear(maze, x, y)


def test_laser_facing_wall(walled):
    obs = walled.observe(pose(walled, [300.0], [300.0], [0.0]))
    front = obs[0, 1].item()
    assert front == pytest.approx(30.0, abs=1e-4)  # wall pixel 110 -> x = 330
    assert obs[0, 0].item() == pytest.approx(30 * math.sqrt(2), abs=1e-3)
    assert obs[0, 2].item() == pytest.approx(30 * math.sqrt(2), abs=1e-3)
    assert obs[0, 3].item() == 0.0 and obs[0, 4].item() == 0.0  # bumpers off: 0.0 (authors')


def test_laser_no_wall_in_range(walled):
    # the authors' wrapper reports the maximum range (100) for a laser that hits nothing
    obs = walled.observe(pose(walled, [200.0], [300.0], [0.0]))
    assert obs[0, 1].item() == 100.0  # wall 130 units away, range 100
    assert walled.lasers(pose(walled, [200.0], [300.0], [0.0]))[0, 1].item() == -1.0  # raw
    # 95 units away: a hit, reported as its distance
    assert walled.observe(pose(walled, [235.0], [300.0], [0.0]))[0, 1].item() == pytest.approx(
        95.0, abs=1e-4
    )


def _bumped(env, theta):
    """Drive towards the wall at x = 330 until a bumper is set; the state."""
    s = pose(env, [300.0], [300.0], [theta])
    for _ in range(40):
        s = env.step(s, torch.tensor([[1.9, 2.0]]))
        if s.bumper_left.item() or s.bumper_right.item():
            return s
    raise AssertionError("never touched the wall")


@pytest.mark.parametrize("theta, touching", [(-0.3, [0.0, 1.0]), (0.3, [1.0, 0.0])])
def test_sensor_encodings(walled, theta, touching):
    from conftest import open_bitmap

    legacy = HardMaze(bitmap=open_bitmap(110), sensor_encoding="legacy")
    assert walled.spec.options["sensor_encoding"] == "authors"
    assert legacy.spec.options["sensor_encoding"] == "legacy"
    s = _bumped(walled, theta)
    obs = walled.observe(s)
    assert obs[0, 3:].tolist() == touching  # bumpers as 1.0 / 0.0 floats
    assert obs.dtype == torch.float32
    old = legacy.observe(s)
    assert old[0, 3:].tolist() == [1.0 if b else -1.0 for b in touching]
    assert torch.equal(old[:, :3], obs[:, :3])  # every laser hits the wall here
    far = pose(walled, [200.0], [300.0], [0.0])
    assert legacy.observe(far)[0].tolist() == [-1.0, -1.0, -1.0, -1.0, -1.0]
    assert walled.observe(far)[0].tolist() == [100.0, 100.0, 100.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="sensor_encoding"):
        HardMaze(sensor_encoding="raw")


def test_laser_table_equals_plain_walk(maze):
    rng = np.random.default_rng(1)
    n = 2000
    xs = rng.uniform(30, 570, n).astype(np.float32)
    ys = rng.uniform(30, 570, n).astype(np.float32)
    th = rng.uniform(-math.pi, math.pi, n).astype(np.float32)
    lasers = maze.lasers(pose(maze, xs, ys, th)).numpy()
    for i in range(n):
        for k, a in enumerate((math.pi / 4, 0.0, -math.pi / 4)):
            x1, y1 = real_to_pixel(xs[i], maze.scale), real_to_pixel(ys[i], maze.scale)
            ang = np.float32(th[i]) + np.float32(a)
            x2 = real_to_pixel(float(np.float32(xs[i] + np.cos(ang) * 100)), maze.scale)
            y2 = real_to_pixel(float(np.float32(ys[i] + np.sin(ang) * 100)), maze.scale)
            hit = cast_ray_reference(maze.obstacles, x1, y1, x2, y2)
            want = -1.0 if hit is None else math.hypot(hit[0] * 3 - xs[i], hit[1] * 3 - ys[i])
            assert lasers[i, k] == pytest.approx(want, abs=1e-3), (i, k)
    assert NO_HIT == -128


def test_reward_only_at_final_step(maze):
    T = maze.spec.episode_length
    s = pose(maze, [60.0, 85.0, 300.0, 100.0], [60.0, 60.0, 300.0, 230.0], [0.0] * 4, t=T)
    r = maze.reward(s)
    assert r.tolist() == pytest.approx([1.0, 0.5, 0.0, 0.4], abs=1e-6)
    assert maze.reward_area(s).tolist() == [0, 0, -1, 1]
    early = maze.make_state(s.pos, s.theta, t=T - 1)
    assert maze.reward(early).tolist() == [0.0] * 4


def test_descriptor_and_render(maze):
    s = pose(maze, [60.0, 540.0], [450.0, 60.0], [0.0, 0.0])
    assert maze.descriptor(s).flatten().tolist() == pytest.approx([0.1, 0.75, 0.9, 0.1])
    img = maze.render(s)
    assert img.shape == (2, 64, 64, 3) and img.dtype == torch.uint8
    # robot 0 at (60, 450): 94% of output pixel (row 48, col 6) is its blue disk (the
    # authors' render, see tests/test_maze_render.py); robot 1 is elsewhere
    assert img[0, 48, 6].tolist() == [16, 16, 255]
    assert img[1, 48, 6].tolist() == [255, 255, 255]


def test_registry_errors():
    assert "hardmaze" in envs.names()
    with pytest.raises(KeyError, match="known environments: .*hardmaze"):
        envs.make("no-such-env")
    with pytest.raises(TypeError, match="hardmaze"):
        envs.make("hardmaze", bogus=1)


def test_envs_does_not_import_qd():
    import pathlib

    for path in pathlib.Path(envs.__file__).parent.glob("*.py"):
        text = path.read_text()
        assert "import qd" not in text and "from qd" not in text, path


def test_bad_options():
    with pytest.raises(ValueError, match="episode_length"):
        HardMaze(episode_length=0)
