"""Your own behaviour space in a run: ``space="package.module:Class"`` plus ``space_options``.

A behaviour space is any object with ``dim`` (descriptor size), ``recordings`` (keyword
arguments of ``LocalEvaluator.evaluate``, e.g. ``{"path": 20}``) and ``describe(outcomes) ->
[B, dim]``. A run names it by reference so that ``config.json`` can rebuild it on resume:
``factory(**space_options)``, where ``factory`` is the referenced class or function; it also
receives ``env_spec``, ``seed`` and ``device`` when its signature has parameters of those names.
``qd.run.start`` also takes the class itself, or a dataclass instance (recorded as its class
and field values).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from typing import Any

from envs.plugins import load_reference, parse_reference, reference_of

_BUILT_IN_PREFIXES = ("signature", "autoencoder")


def is_space_reference(name: Any) -> bool:
    """True for ``"package.module:Class"`` (not a built-in ``signature:``/``autoencoder:``)."""
    if not isinstance(name, str):
        return False
    parsed = parse_reference(name)
    return parsed is not None and parsed[0] not in _BUILT_IN_PREFIXES


def space_setting(space: Any, options: dict) -> tuple[str, dict]:
    """``(name or reference, options)`` to record in ``config.json`` for ``space``.

    ``space`` is a name or reference (kept as is), a class or factory function (its
    reference), or a dataclass instance (its class's reference and its field values).

    Raises:
        ValueError: the object cannot be rebuilt from a reference and JSON options.
    """
    if isinstance(space, str):
        return space, dict(options)
    if inspect.isclass(space) or inspect.isfunction(space):
        return reference_of(space), dict(options)
    if not hasattr(space, "describe"):
        raise ValueError(
            f"behaviour space must be a name, a module:Class reference, a class or a space object "
            f"(with dim, recordings and describe), got {space!r}"
        )
    if not dataclasses.is_dataclass(space):
        raise ValueError(
            f"behaviour space {space!r} is not a dataclass, so config.json cannot record how to "
            "rebuild it: pass its class and its keyword options (space_options) instead"
        )
    if options:
        raise ValueError("give space_options with a space class or reference, not an instance")
    cls = type(space)
    values = {f.name: getattr(space, f.name) for f in dataclasses.fields(space) if f.init}
    try:
        json.dumps(values)
        same = cls(**values) == space
    except (TypeError, ValueError):
        same = False
    if not same:
        raise ValueError(
            f"behaviour space {space!r} cannot be rebuilt from JSON field values: pass its class "
            "and its keyword options (space_options) instead"
        )
    return reference_of(cls), values


def check_space(space: Any, name: str) -> Any:
    """``space`` if it has what a run uses (``dim``, ``recordings``, ``describe``)."""
    missing = [a for a in ("dim", "recordings", "describe") if not hasattr(space, a)]
    if missing:
        raise ValueError(f"behaviour space {name!r} has no {', '.join(missing)}")
    dim = space.dim
    if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
        raise ValueError(f"behaviour space {name!r}: dim must be a positive int, got {dim!r}")
    if not isinstance(space.recordings, dict):
        raise ValueError(f"behaviour space {name!r}: recordings must be a dict")
    return space


def build_space(reference: str, env_spec, *, options: dict, seed: int, device) -> Any:
    """The space ``factory(**options)`` named by ``reference`` (see the module docstring)."""
    what = f"behaviour space {reference!r}"
    factory = load_reference(reference, what=what)
    if not callable(factory):  # a module-level space object
        if options:
            raise ValueError(f"{what} is an object; space options need a class or function")
        return check_space(factory, reference)
    kwargs = dict(options)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    for key, value in (("env_spec", env_spec), ("seed", seed), ("device", device)):
        if key in params and key not in kwargs:
            kwargs[key] = value
    try:
        space = factory(**kwargs)
    except TypeError as err:
        raise TypeError(f"bad options for {what}: {err}") from None
    return check_space(space, reference)
