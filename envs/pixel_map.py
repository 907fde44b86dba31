"""Obstacle bitmaps and the precomputed lookup tables that make libfastsim's sensing exact and fast.

libfastsim tests collisions pixel by pixel and casts lasers with a Bresenham walk. Both depend
only on integer pixel coordinates, so they can be tabulated once per map:

* collision: the robot collides iff an obstacle pixel lies at an integer offset (i, j) from its
  centre pixel with i*i + j*j <= r*r (r = radius in pixels). ``disk_obstacles[p, k]`` holds that
  test for every centre pixel p and disk offset k (exact, also gives the bumpers).
* lasers: the first obstacle pixel on the walk from a start pixel to an end pixel depends only
  on the start pixel and the integer end offset. ``LaserTable`` stores, for every start pixel
  and every end offset a laser of the given range can produce, the offset of the pixel the
  walk returns (exact; ``cast_ray_reference`` is the plain walk the table is tested against).
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

NO_HIT = -128  # int8 sentinel: the walk found no obstacle


def load_pbm(path: str | Path) -> np.ndarray:
    """Read a binary PBM (P4) file as a ``[H, W]`` bool array (True = obstacle)."""
    path = Path(path)
    data = path.read_bytes()
    tokens: list[bytes] = []
    pos = 0
    while len(tokens) < 3:
        while pos < len(data) and data[pos : pos + 1].isspace():
            pos += 1
        if data[pos : pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while end < len(data) and not data[end : end + 1].isspace():
            end += 1
        tokens.append(data[pos:end])
        pos = end
    if tokens[0] != b"P4":
        raise ValueError(f"{path}: not a binary PBM (P4) file (magic {tokens[0]!r})")
    width, height = int(tokens[1]), int(tokens[2])
    pos += 1  # single whitespace after the header
    row_bytes = (width + 7) // 8
    raw = np.frombuffer(data[pos : pos + row_bytes * height], dtype=np.uint8)
    if raw.size != row_bytes * height:
        raise ValueError(f"{path}: truncated PBM data ({raw.size} of {row_bytes * height} bytes)")
    bits = np.unpackbits(raw.reshape(height, row_bytes), axis=1)[:, :width]
    return bits.astype(bool)


def real_to_pixel(value: float, scale: float) -> int:
    """libfastsim's ``real_to_pixel``: round half away from zero of ``value * scale``."""
    v = value * scale
    return int(math.floor(v + 0.5)) if v >= 0 else -int(math.floor(-v + 0.5))


def disk_offsets(radius_px: int) -> np.ndarray:
    """Integer offsets ``[K, 2]`` (dx, dy) with dx*dx + dy*dy <= radius_px**2."""
    r = radius_px
    grid = np.stack(np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1), indexing="xy"), -1)
    offsets = grid.reshape(-1, 2)
    return offsets[(offsets**2).sum(1) <= r * r]


def _padded(obstacles: np.ndarray, pad: int) -> np.ndarray:
    """Obstacle map padded with obstacles (outside the map counts as a wall)."""
    return np.pad(obstacles, pad, constant_values=True)


def disk_obstacles(obstacles: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``[H*W, K]`` bool: is there an obstacle at centre pixel p + offset k."""
    h, w = obstacles.shape
    pad = int(np.abs(offsets).max())
    padded = _padded(obstacles, pad)
    cols = [padded[pad + dy : pad + dy + h, pad + dx : pad + dx + w] for dx, dy in offsets]
    return np.stack(cols, -1).reshape(h * w, len(offsets))


def bresenham_steps(dx: int, dy: int) -> tuple[list[list[tuple[int, int]]], list[tuple[int, int]]]:
    """libfastsim's ``check_inter_pixel`` walk from (0, 0) to (dx, dy).

    Returns, for each step, the cells tested at that step (the corner cells of a diagonal move,
    then the new main cell) and the main cell, which is what the walk reports on a hit.
    """
    major_is_y = abs(dy) >= abs(dx)
    d_major, d_minor = (dy, dx) if major_is_y else (dx, dy)
    s_major = -1 if d_major < 0 else 1
    s_minor = -1 if d_minor < 0 else 1
    n_major, n_minor = abs(d_major), abs(d_minor)
    dd_major, dd_minor = 2 * n_major, 2 * n_minor
    major = minor = 0
    error = error_prev = n_major
    tested: list[list[tuple[int, int]]] = []
    mains: list[tuple[int, int]] = []

    def cell(mi: int, ma: int) -> tuple[int, int]:
        return (mi, ma) if major_is_y else (ma, mi)

    for _ in range(n_major):
        major += s_major
        error += dd_minor
        cells = []
        if error > dd_major:
            minor += s_minor
            error -= dd_major
            if error + error_prev < dd_major:
                cells.append(cell(minor - s_minor, major))
            elif error + error_prev > dd_major:
                cells.append(cell(minor, major - s_major))
            else:
                cells.append(cell(minor - s_minor, major))
                cells.append(cell(minor, major - s_major))
        cells.append(cell(minor, major))
        error_prev = error
        tested.append(cells)
        mains.append(cell(minor, major))
    return tested, mains


def cast_ray_reference(
    obstacles: np.ndarray, x1: int, y1: int, x2: int, y2: int
) -> tuple[int, int] | None:
    """Plain (slow) libfastsim walk in pixel coordinates; returns the reported hit pixel or None."""
    h, w = obstacles.shape

    def blocked(x: int, y: int) -> bool:
        return not (0 <= x < w and 0 <= y < h) or bool(obstacles[y, x])

    tested, mains = bresenham_steps(x2 - x1, y2 - y1)
    hit = blocked(x1, y1)
    for cells, (mx, my) in zip(tested, mains, strict=True):
        for cx, cy in cells:
            hit = hit or blocked(x1 + cx, y1 + cy)
        if hit:
            return x1 + mx, y1 + my
    return None


def laser_end_offsets(range_px: float) -> np.ndarray:
    """Every integer end offset ``[O, 2]`` a laser of ``range_px`` pixels can produce.

    Rounding start and end points moves the offset by less than one pixel per axis, so the
    offsets lie within sqrt(2) of the circle of radius ``range_px``.
    """
    r = int(math.ceil(range_px + 2))
    grid = np.stack(np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1), indexing="xy"), -1)
    offsets = grid.reshape(-1, 2)
    norm = np.sqrt((offsets**2).sum(1))
    keep = (norm >= range_px - math.sqrt(2) - 1e-6) & (norm <= range_px + math.sqrt(2) + 1e-6)
    return offsets[keep]


@dataclass(frozen=True)
class LaserTable:
    """Exact first-hit table for one map and one laser range.

    Attributes:
        hits: ``[H*W, O, 2]`` int8 offset (dx, dy) of the reported hit pixel from the start
            pixel, ``NO_HIT`` in dx when the walk reaches its end without a hit.
        offset_index: ``[(2R+1) * (2R+1)]`` int64, index into O of end offset (dx, dy) stored at
            ``(dy + R) * (2R + 1) + (dx + R)``, -1 for offsets a laser cannot produce.
        reach: R.
    """

    hits: np.ndarray
    offset_index: np.ndarray
    reach: int


def _build_laser_table(obstacles: np.ndarray, range_px: float) -> LaserTable:
    h, w = obstacles.shape
    ends = laser_end_offsets(range_px)
    reach = int(np.abs(ends).max())
    pad = reach + 1
    windows = sliding_window_view(_padded(obstacles, pad), (h, w))
    hits = np.full((h, w, len(ends), 2), NO_HIT, dtype=np.int8)
    for o, (ex, ey) in enumerate(ends):
        tested, mains = bresenham_steps(int(ex), int(ey))
        cells = [(0, 0)] + [c for step in tested for c in step]
        step_of_cell = [0] + [k for k, step in enumerate(tested) for _ in step]
        cx = np.array([c[0] for c in cells])
        cy = np.array([c[1] for c in cells])
        blocked = windows[pad + cy, pad + cx]  # [n_cells, H, W]
        # The first blocked cell lies in the first blocked step; a blocked start pixel is
        # reported at the first step, like the original walk.
        first_cell = blocked.argmax(0)
        any_hit = np.take_along_axis(blocked, first_cell[None], 0)[0]
        main = np.asarray(mains, dtype=np.int8)[np.asarray(step_of_cell)[first_cell]]
        hits[:, :, o] = np.where(any_hit[..., None], main, NO_HIT)
    offset_index = np.full((2 * reach + 1) ** 2, -1, dtype=np.int64)
    offset_index[(ends[:, 1] + reach) * (2 * reach + 1) + (ends[:, 0] + reach)] = np.arange(
        len(ends)
    )
    return LaserTable(hits.reshape(h * w, len(ends), 2), offset_index, reach)


@functools.lru_cache(maxsize=8)
def _cached_laser_table(key: str, shape: tuple[int, int], packed: bytes, range_px: float):
    obstacles = np.unpackbits(np.frombuffer(packed, np.uint8))[: shape[0] * shape[1]]
    return _build_laser_table(obstacles.reshape(shape).astype(bool), range_px)


def laser_table(obstacles: np.ndarray, range_px: float) -> LaserTable:
    """Laser first-hit table for ``obstacles`` (built once per process and map, ~1 s)."""
    packed = np.packbits(obstacles.astype(np.uint8)).tobytes()
    key = hashlib.sha1(packed).hexdigest()
    return _cached_laser_table(key, obstacles.shape, packed, float(range_px))
