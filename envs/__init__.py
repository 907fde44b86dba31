"""Batched torch environments for quality-diversity search (imports nothing from ``qd``)."""

from __future__ import annotations

from collections.abc import Callable

from envs.base import BatchedEnv, EnvSpec

_REGISTRY: dict[str, Callable[..., BatchedEnv]] = {}


def register(name: str, factory: Callable[..., BatchedEnv]) -> None:
    """Register ``factory(**options)`` under ``name``."""
    _REGISTRY[name] = factory


def names() -> list[str]:
    """Names of the registered environments, sorted."""
    return sorted(_REGISTRY)


def make(name: str, **options) -> BatchedEnv:
    """Build the environment ``name`` with keyword ``options``.

    ``gym:<id>`` wraps any registered Gymnasium environment (see
    :mod:`envs.gymnasium_adapter`).

    Raises:
        KeyError: unknown name (the message lists the known ones).
        TypeError: an option the environment does not accept.
    """
    if name.startswith("gym:"):
        from envs.gymnasium_adapter import GymnasiumEnv

        return GymnasiumEnv(name[4:], **options)
    if name not in _REGISTRY:
        raise KeyError(
            f"unknown environment {name!r}; known environments: {', '.join(names())}, "
            "or gym:<Gymnasium id>"
        )
    try:
        return _REGISTRY[name](**options)
    except TypeError as err:
        raise TypeError(f"bad options for environment {name!r}: {err}") from None


def _hardmaze(**options) -> BatchedEnv:
    from envs.hardmaze import HardMaze

    return HardMaze(**options)


def _curling(**options) -> BatchedEnv:
    from envs.curling import Curling

    return Curling(**options)


def _redundant_arm(**options) -> BatchedEnv:
    from envs.redundant_arm import RedundantArm

    return RedundantArm(**options)


def _point_trap(**options) -> BatchedEnv:
    from envs.point_trap import PointTrap

    return PointTrap(**options)


def _billiard(**options) -> BatchedEnv:
    from envs.billiard import Billiard

    return Billiard(**options)


register("hardmaze", _hardmaze)
register("curling", _curling)
register("redundant-arm", _redundant_arm)
register("point-trap", _point_trap)
register("billiard", _billiard)

__all__ = ["BatchedEnv", "EnvSpec", "make", "names", "register"]
