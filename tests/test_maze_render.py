"""HardMaze frames (envs.maze_render): the authors' render and the legacy one.

Expected pixels are worked out by hand from the authors' rules: a 200 x 200 image (3 world
units per pixel), disks ``(r - cy)^2 + (c - cx)^2 < R^2``, robot radius 2 pixels, goals 50/3
pixels, bilinear resize to 64 x 64 sampling input coordinate ``3.125 i + 1.0625``.
"""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import envs
from envs.hardmaze import HardMaze
from envs.maze_render import MazeRenderer, bilinear_taps


def _at(x, y):
    return SimpleNamespace(x=torch.tensor(x), y=torch.tensor(y))


def test_bilinear_taps_200_to_64():
    index, weight = bilinear_taps(200, 64)
    # i = 0: 0.5 * 3.125 - 0.5 = 1.0625; i = 63: 197.9375; i = 32: 101.0625
    assert index[0].tolist() == [1, 2] and weight[0].tolist() == [0.9375, 0.0625]
    assert index[63].tolist() == [197, 198] and weight[63].tolist() == [0.0625, 0.9375]
    assert index[32].tolist() == [101, 102] and weight[32].tolist() == [0.9375, 0.0625]


def test_authors_robot_on_an_empty_map():
    renderer = MazeRenderer(
        np.zeros((200, 200), dtype=bool),
        world_size=600.0,
        goals=(),
        image_size=64,
        style="authors",
        robot_radius=6.0,
    )
    # robot at pixel (100, 100): rows/cols 99-101 are inside. Output (32, 32) taps rows and
    # cols 101 (weight 0.9375) and 102 (outside): blue share 0.9375^2 = 0.87890625, so
    # R = G = 255 * 0.12109375 = 30.88 -> 31. Rows/cols 31 tap 97-98: outside.
    frame = renderer.render(torch.tensor([300.0]), torch.tensor([300.0]))[0]
    assert frame[32, 32].tolist() == [31, 31, 255]
    not_white = (frame != 255).any(-1).nonzero().tolist()
    assert not_white == [[32, 32]]


def test_hardmaze_authors_frame_has_goals_walls_and_robot():
    maze = envs.make("hardmaze")
    assert maze.render_style == "authors" and maze.render_radius == 6.0
    img = maze.render(_at([60.0, 300.0], [450.0, 60.0]))
    assert img.shape == (2, 64, 64, 3) and img.dtype == torch.uint8
    # goal (60, 60) -> pixel (20, 20), radius 16.7: output (6, 6) taps rows/cols 19-20
    assert img[0, 6, 6].tolist() == [255, 0, 0]
    # goal (100, 200) -> pixel (33.3, 66.7): output row 21 taps 66-67, column 10 taps 32-33
    assert img[0, 21, 10].tolist() == [255, 0, 0]
    # the outer wall covers the taps of output (0, 0) (pixels 1-2)
    assert maze.obstacles[1:3, 1:3].all() and img[0, 0, 0].tolist() == [0, 0, 0]
    # robot at the start (60, 450) -> pixel (20, 150), rows 149-151 and cols 19-21 inside.
    # Output (48, 6) taps rows 151 (0.9375) / 152 and cols 19 (0.1875) / 20 (0.8125):
    # blue share 0.9375, R = G = 255 * 0.0625 = 15.9 -> 16.
    assert img[0, 48, 6].tolist() == [16, 16, 255]
    assert img[1, 48, 6].tolist() == [255, 255, 255]


def test_larger_radius_and_legacy_style_are_options():
    state = _at([300.0], [300.0])
    blue = torch.tensor([0, 0, 255], dtype=torch.uint8)

    def robot_pixels(**options):
        return int((HardMaze(**options).render(state) == blue).all(-1).sum())

    # radius 90 = 30 pixels of the 200-pixel image: a disk of ~ pi (30 / 3.125)^2 = 290
    # output pixels, minus the wall under it
    assert robot_pixels() == 0 and 200 < robot_pixels(render_radius=90) < 300
    legacy = HardMaze(render_style="legacy")
    assert legacy.render_radius == 90.0 and legacy.spec.options["render_style"] == "legacy"
    red = torch.tensor([220, 30, 30], dtype=torch.uint8)
    frame = legacy.render(_at([60.0], [540.0]))[0]
    # legacy: grey maze, red disk tested at output pixel centres; (60, 540) is in pixel (6, 57)
    assert frame[57, 6].tolist() == red.tolist() and frame[10, 40].tolist() == [235, 235, 235]
    with pytest.raises(ValueError, match="render_style"):
        HardMaze(render_style="fancy")
    with pytest.raises(ValueError, match="render_radius"):
        HardMaze(render_radius=0)
