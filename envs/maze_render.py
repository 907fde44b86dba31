"""HardMaze frames for the TAXONS / STAX autoencoders, batched.

Two styles:

* ``"authors"``: the authors' render (``SimpleNavEnv.render`` in GPaolo/SERENE's
  ``gym_fastsim/simple_nav/nav_env.py``, resized as STAX's evaluator does): an image the size of
  the obstacle bitmap (200 x 200, 3 world units per pixel), free pixels white, walls black, each
  goal a red disk of its radius, the robot a blue disk on top (radius 2 pixels there, i.e. 6 world
  units, smaller than the robot's 10); a pixel (row r, column c) is inside a disk of centre
  (cx, cy) and radius R (pixels) when ``(r - cy)^2 + (c - cx)^2 < R^2`` (``skimage.draw``'s
  rule). That image is then resized to 64 x 64 bilinearly without anti-aliasing (skimage
  ``resize``: output pixel i samples input coordinate ``(i + 0.5) * 200 / 64 - 0.5``) and stored
  as uint8 (``round(255 v)``; the authors keep floats in [0, 1]).
* ``"legacy"``: this package's render before issue 17: the maze area-averaged to 64 x 64 in
  greys, no goals, the robot a red (220, 30, 30) disk of ``robot_radius`` world units tested at
  the output pixels' centres.

The authors' frame is linear in the 200 x 200 image, so a batch is the fixed frame of the maze
and goals plus, per robot, the robot disk seen through the 4 bilinear taps of each output pixel
(``[B, 64, 64, 2, 2]`` tests, no 200 x 200 image per individual).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "AUTHORS_ROBOT_RADIUS",
    "LEGACY_ROBOT_RADIUS",
    "RENDER_STYLES",
    "MazeRenderer",
    "bilinear_taps",
    "robot_radius_for",
]

RENDER_STYLES = ("authors", "legacy")
AUTHORS_ROBOT_RADIUS = 6.0
"""World units: the authors draw the robot with radius 2 pixels of the 200-pixel image."""
LEGACY_ROBOT_RADIUS = 90.0
WHITE, BLACK = (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)
GOAL_RED, ROBOT_BLUE = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)
LEGACY_RED = (220, 30, 30)


def bilinear_taps(source: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Input indices ``[size, 2]`` and weights ``[size, 2]`` of a bilinear resize from
    ``source`` to ``size`` pixels (pixel-centre alignment, indices clamped to the edge)."""
    coord = (np.arange(size) + 0.5) * (source / size) - 0.5
    low = np.floor(coord)
    frac = coord - low
    index = np.stack([low, low + 1], 1).clip(0, source - 1).astype(np.int64)
    weight = np.stack([1.0 - frac, frac], 1)
    return index, weight


def disk_mask(rows: np.ndarray, cols: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    """``[len(rows), len(cols)]`` bool: pixel centres strictly inside the disk (pixel units)."""
    return (rows[:, None] - cy) ** 2 + (cols[None, :] - cx) ** 2 < r * r


class MazeRenderer:
    """Render robots at world positions ``(x, y)`` over a maze bitmap.

    Args:
        obstacles: ``[H, H]`` bool bitmap (1 = wall), rows along world y.
        world_size: side of the world in world units.
        goals: ``(x, y, radius)`` in world units.
        image_size: side of the square output.
        style: ``"authors"`` or ``"legacy"`` (see the module docstring).
        robot_radius: the robot's disk radius in world units.
    """

    def __init__(
        self,
        obstacles: np.ndarray,
        *,
        world_size: float,
        goals: tuple[tuple[float, float, float], ...],
        image_size: int,
        style: str,
        robot_radius: float,
    ) -> None:
        if style not in RENDER_STYLES:
            raise ValueError(f"render_style must be one of {RENDER_STYLES}, got {style!r}")
        if robot_radius <= 0:
            raise ValueError(f"render_radius must be > 0, got {robot_radius}")
        self.style = style
        self.obstacles = np.asarray(obstacles, dtype=bool)
        self.world_size = float(world_size)
        self.image_size = int(image_size)
        self.robot_radius = float(robot_radius)
        side = self.obstacles.shape[0]
        self.pixels_per_unit = side / self.world_size
        if style == "authors":
            image = np.where(self.obstacles[..., None], BLACK, WHITE)
            pixels = np.arange(side, dtype=np.float64)
            for gx, gy, gr in goals:
                s = self.pixels_per_unit
                image[disk_mask(pixels, pixels, gx * s, gy * s, gr * s)] = GOAL_RED
            index, weight = bilinear_taps(side, self.image_size)
            self._index = torch.from_numpy(index)
            self._weight = torch.from_numpy(weight)
            self._image = torch.from_numpy(image)  # [H, H, 3] float64
        self._cache: dict[torch.device, dict[str, torch.Tensor]] = {}

    def _tables(self, device: torch.device) -> dict[str, torch.Tensor]:
        if device not in self._cache:
            if self.style == "authors":
                idx, w, image = self._index, self._weight, self._image
                # taps[i, j, k, l]: colour of input pixel (idx[i, k], idx[j, l])
                taps = image[idx[:, None, :, None], idx[None, :, None, :]]  # [S, S, 2, 2, 3]
                tap_w = w[:, None, :, None] * w[None, :, None, :]  # [S, S, 2, 2]
                frame = (tap_w[..., None] * taps).sum((2, 3))
                blue = torch.tensor(ROBOT_BLUE, dtype=torch.float64)
                tables = {
                    "frame": frame.float(),
                    "tap_w": tap_w.float(),
                    "delta": ((blue - taps) * tap_w[..., None]).float(),  # [S, S, 2, 2, 3]
                    "tap_pos": idx.float(),  # [S, 2] input pixel index of each tap
                }
            else:
                grey = self._legacy_background()
                centres = (torch.arange(self.image_size, dtype=torch.float32) + 0.5) * (
                    self.world_size / self.image_size
                )
                tables = {"background": grey, "centres": centres}
            self._cache[device] = {k: v.to(device) for k, v in tables.items()}
        return self._cache[device]

    def _legacy_background(self) -> torch.Tensor:
        img = torch.from_numpy(self.obstacles.astype(np.float32))[None, None]
        if self.image_size != img.shape[-1]:
            img = torch.nn.functional.interpolate(
                img, size=(self.image_size, self.image_size), mode="area"
            )
        grey = (235 - 200 * img[0, 0]).round().to(torch.uint8)
        return grey[..., None].expand(-1, -1, 3).contiguous()

    def render(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``[B, S, S, 3]`` uint8 frames of robots at world positions ``x``, ``y`` ``[B]``."""
        tables = self._tables(x.device)
        if self.style == "legacy":
            return self._render_legacy(tables, x, y)
        s = self.pixels_per_unit
        cx, cy = x.float() * s, y.float() * s
        r = self.robot_radius * s
        pos = tables["tap_pos"]
        dy2 = (pos[None] - cy[:, None, None]) ** 2  # [B, S, 2]: rows of the taps
        dx2 = (pos[None] - cx[:, None, None]) ** 2  # [B, S, 2]: columns
        inside = dy2[:, :, None, :, None] + dx2[:, None, :, None, :] < r * r  # [B, S, S, 2, 2]
        robot = torch.einsum("bijkl,ijklc->bijc", inside.float(), tables["delta"])
        frame = (tables["frame"] + robot).clamp(0.0, 1.0)
        return (frame * 255.0).round().to(torch.uint8)

    def _render_legacy(self, tables: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        centres = tables["centres"]
        d2 = (centres[None, None, :] - x[:, None, None]) ** 2 + (
            centres[None, :, None] - y[:, None, None]
        ) ** 2
        radius = max(self.robot_radius, 1.5 * self.world_size / self.image_size)
        robot = (d2 <= radius * radius)[..., None]
        colour = torch.tensor(LEGACY_RED, dtype=torch.uint8, device=x.device)
        return torch.where(robot, colour, tables["background"].expand(x.shape[0], -1, -1, -1))


def robot_radius_for(style: str, radius: float | None) -> float:
    """The robot's render radius in world units: ``radius``, or the style's default."""
    if radius is not None:
        return float(radius)
    return AUTHORS_ROBOT_RADIUS if style == "authors" else LEGACY_ROBOT_RADIUS
