"""Batched torch environments for quality-diversity search (imports nothing from ``qd``)."""

from __future__ import annotations

from collections.abc import Callable, Collection

from envs import plugins
from envs.base import BatchedEnv, EnvSpec

_REGISTRY: dict[str, Callable[..., BatchedEnv]] = {}


def register(name: str, factory: Callable[..., BatchedEnv]) -> None:
    """Register ``factory(**options)`` under ``name``."""
    _REGISTRY[name] = factory


def names() -> list[str]:
    """Names of the registered environments and installed ``qdtorch.envs`` plugins, sorted."""
    return sorted(set(_REGISTRY) | set(plugins.entry_point_names()))


def make(name: str, **options) -> BatchedEnv:
    """Build the environment ``name`` with keyword ``options`` (see :func:`build`)."""
    return build(name, options)


def build(
    name: str, options: dict | None = None, *, allow_import: bool | Collection[str] = True
) -> BatchedEnv:
    """Build an environment from its name and keyword options.

    ``name`` is a registered name, an installed ``qdtorch.envs`` entry point,
    ``package.module:callable`` (``callable(**options)`` returns the env), ``gym:<id>`` (any
    registered Gymnasium environment, see :mod:`envs.gymnasium_adapter`) or ``gym:module:<id>``
    (Gymnasium imports ``module`` first, which registers ``<id>``).

    Args:
        name: as above.
        options: keyword options of the environment.
        allow_import: True, or the only modules a reference may import (read commands pass
            the modules the user gave with ``--import``).

    Raises:
        KeyError: unknown name (the message lists the known ones and the other forms).
        TypeError: an option the environment does not accept.
        envs.plugins.ImportRefused: a reference to a module that ``allow_import`` excludes.
    """
    options = dict(options or {})
    if not isinstance(name, str) or not name:
        raise KeyError(f"environment must be a non-empty name, got {name!r}")
    if name.startswith("gym:"):
        gym_id = name[4:]
        module = gym_id.partition(":")[0] if ":" in gym_id else None
        if module and not plugins.import_allowed(module, allow_import):
            raise plugins.refuse(module, f"environment {name!r}")
        from envs.gymnasium_adapter import GymnasiumEnv

        return GymnasiumEnv(gym_id, **options)
    factory = _REGISTRY.get(name)
    if factory is None and plugins.parse_reference(name) is not None:
        factory = plugins.load_reference(
            name, allow_import=allow_import, what=f"environment {name!r}"
        )
        if not callable(factory):
            raise KeyError(f"environment {name!r}: {factory!r} is not callable")
    if factory is None and (entry := plugins.entry_point(name)) is not None:
        factory = entry.load()
    if factory is None:
        raise KeyError(
            f"unknown environment {name!r}; known environments: {', '.join(names())}; or "
            "gym:<Gymnasium id>, gym:<module>:<id>, <module>:<callable>, or a name registered "
            "by a module you import with --import <module>"
        )
    try:
        return factory(**options)
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

__all__ = ["BatchedEnv", "EnvSpec", "build", "make", "names", "plugins", "register"]
