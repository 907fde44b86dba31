"""Descriptor rules of the Gymnasium adapter, and the size check of its coverage grid.

A rule says where an episode's ground-truth descriptor comes from:

* ``final_obs`` / ``final_obs[i:j]``: the final observation (or a slice of it);
* ``info[key1,key2,...]``: entries of the ``info`` dict the env returns at its last step
  (scalars or 1-D arrays, concatenated; e.g. MuJoCo's ``info[x_position,y_position]``);
* a callable ``f(final_obs [B, obs]) -> [B, d]``.

Bounds come from the observation space for observation slices with finite bounds; every other
rule needs ``descriptor_bounds=(low, high)``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from envs.base import MAX_GRID_CELLS

_SLICE = re.compile(r"^final_obs(?:\[(-?\d*):(-?\d*)\])?$")
_INFO = re.compile(r"^info\[([^\]]*)\]$")
_KEY = re.compile(r"^[\w./-]+$")


@dataclass(frozen=True)
class DescriptorRule:
    """A parsed descriptor rule.

    Attributes:
        text: the rule as written in the options (``spec.options["descriptor"]``).
        low, high: bounds of each descriptor dimension.
        from_obs: ``f(obs [B, obs]) -> [B, d]`` for observation rules, else None.
        info_keys: keys of the ``info`` dict for ``info[...]`` rules, else ().
    """

    text: str
    low: np.ndarray
    high: np.ndarray
    from_obs: Callable[[torch.Tensor], torch.Tensor] | None = None
    info_keys: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return len(self.low)


def _bounds(bounds, rule: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        low, high = (np.asarray(b, dtype=np.float64).reshape(-1) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(
            f"descriptor_bounds must be (low, high) sequences of numbers, got {bounds!r}"
        ) from None
    if len(low) != len(high) or len(low) == 0:
        raise ValueError(
            f"descriptor_bounds of {rule!r}: low and high need the same non-zero length, got "
            f"{len(low)} and {len(high)}"
        )
    if not (np.isfinite(low).all() and np.isfinite(high).all() and (high > low).all()):
        raise ValueError(f"descriptor_bounds of {rule!r} must be finite with high > low")
    return low, high


def parse_rule(descriptor, bounds, obs_space) -> DescriptorRule:
    """Parse ``descriptor`` (see the module docstring) against the observation space."""
    if callable(descriptor):
        if bounds is None:
            raise ValueError("a callable descriptor needs descriptor_bounds=(low, high)")
        low, high = _bounds(bounds, "callable")
        return DescriptorRule(getattr(descriptor, "__name__", "callable"), low, high, descriptor)
    text = str(descriptor).strip()
    info = _INFO.match(text)
    if info:
        keys = tuple(k.strip() for k in info.group(1).split(","))
        if not all(keys) or not all(_KEY.match(k) for k in keys):
            raise ValueError(
                f"descriptor rule {text!r}: give info keys separated by commas, e.g. "
                "info[x_position,y_position]"
            )
        if bounds is None:
            raise ValueError(
                f"descriptor rule {text!r} needs descriptor_bounds=(low, high): one bound per "
                "descriptor dimension (info values have no declared bounds)"
            )
        low, high = _bounds(bounds, text)
        return DescriptorRule(text, low, high, info_keys=keys)
    match = _SLICE.match(text)
    if not match:
        raise ValueError(
            f"unknown descriptor rule {text!r}; use 'final_obs', 'final_obs[i:j]', "
            "'info[key1,key2]' or a callable"
        )
    start = int(match.group(1)) if match.group(1) else None
    stop = int(match.group(2)) if match.group(2) else None
    part = slice(start, stop)
    if bounds is None:
        low, high = obs_space.low[part], obs_space.high[part]
        if len(low) and not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise ValueError(
                f"the observation bounds of {text!r} are not finite; "
                "pass descriptor_bounds=(low, high)"
            )
        low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    else:
        low, high = _bounds(bounds, text)
    if len(low) == 0:
        raise ValueError(f"descriptor rule {text!r} selects no observation entry")
    return DescriptorRule(text, low, high, lambda obs: obs[:, part])


def info_values(rule: DescriptorRule, infos: dict, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """``(values [B, d], present [B])`` of the rule's keys in a vector env's ``infos``.

    ``present`` is False for sub-envs that did not report every key this step.

    Raises:
        ValueError: a key is missing from every sub-env, or the sizes do not add up to ``d``.
    """
    columns, present = [], np.ones(batch, dtype=bool)
    for key in rule.info_keys:
        if key not in infos:
            known = ", ".join(sorted(k for k in infos if not k.startswith("_"))) or "none"
            raise ValueError(
                f"descriptor rule {rule.text!r}: the env's info has no key {key!r} "
                f"(its keys: {known})"
            )
        try:
            values = np.asarray(infos[key], dtype=np.float64).reshape(batch, -1)
        except (TypeError, ValueError):
            raise ValueError(
                f"descriptor rule {rule.text!r}: info[{key!r}] is not a number or a 1-D array "
                "of numbers"
            ) from None
        columns.append(values)
        mask = infos.get(f"_{key}")
        if mask is not None:
            present &= np.asarray(mask, dtype=bool).reshape(batch)
    values = np.concatenate(columns, 1)
    if values.shape[1] != rule.size:
        raise ValueError(
            f"descriptor rule {rule.text!r} gives {values.shape[1]} values per episode but "
            f"descriptor_bounds have {rule.size}"
        )
    return values, present


def info_hint(env) -> str:
    """``; its info reports ...: try descriptor='info[...]'`` naming the numeric ``info`` keys a
    reset of the single env ``env`` reports (e.g. MuJoCo's ``x_position``), or ``""``."""
    try:
        _, info = env.reset(seed=0)
    except Exception:  # a hint only: an env that cannot reset here gets none
        return ""
    keys = [
        k
        for k, v in info.items()
        if isinstance(k, str) and _KEY.match(k) and np.asarray(v).dtype.kind in "biuf"
    ]
    if not keys:
        return ""
    xy = [k for k in ("x_position", "y_position") if k in keys]
    example = ",".join(xy or keys[:2])
    return (
        f" (its info reports {', '.join(keys)}: e.g. descriptor='info[{example}]' with "
        f"descriptor_bounds, one [low, high] pair per dimension)"
    )


def check_grid(grid_cells: int, dims: int, *, what: str) -> tuple[int, ...]:
    """The coverage grid shape ``(grid_cells,) * dims``, refused when it has too many cells.

    Raises:
        ValueError: more than :data:`MAX_GRID_CELLS` cells; the message gives the largest
            ``grid_cells`` that fits.
    """
    if not isinstance(grid_cells, int) or isinstance(grid_cells, bool) or grid_cells <= 0:
        raise ValueError(f"grid_cells must be a positive integer, got {grid_cells!r}")
    cells = grid_cells**dims
    if cells > MAX_GRID_CELLS:
        fits = max(1, math.floor(MAX_GRID_CELLS ** (1 / dims) + 1e-9))
        while (fits + 1) ** dims <= MAX_GRID_CELLS:
            fits += 1
        while fits > 1 and fits**dims > MAX_GRID_CELLS:
            fits -= 1
        raise ValueError(
            f"{what}: a {dims}-D descriptor with grid_cells={grid_cells} asks for a coverage grid "
            f"of {grid_cells}^{dims} = {float(cells):.3g} cells (at most {MAX_GRID_CELLS:,}); pass "
            f"grid_cells={fits} or less (env.grid_cells), or a descriptor with fewer dimensions "
            "(e.g. descriptor='final_obs[0:2]' or 'info[x_position,y_position]')"
        )
    return (grid_cells,) * dims
