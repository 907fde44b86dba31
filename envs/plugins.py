"""User code that provides environments (and behaviour spaces): modules, references, plugins.

Three ways make a user's environment known to ``envs.make`` (and so to ``qd run``):

* a reference ``package.module:callable`` (``callable(**options)`` returns a batched env);
* a module that calls ``envs.register(name, factory)`` when imported (``qd ... --import
  package.module``, or ``RunConfig(imports=[...])``);
* an installed package's entry point in the ``qdtorch.envs`` group (name = factory).

Reading a run never imports a module just because the run folder names it: callers pass
``allow_import`` (the modules the user asked for) and a reference to any other module raises
:class:`ImportRefused`, whose message names the ``--import`` option to add.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Collection
from importlib import metadata
from typing import Any

ENTRY_POINT_GROUP = "qdtorch.envs"

_REFERENCE = re.compile(r"^([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*):([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")


class ImportRefused(ImportError):
    """A read command was asked to build something from a module it was not allowed to import."""


def parse_reference(text: str) -> tuple[str, str] | None:
    """``("package.module", "attr.path")`` for ``"package.module:attr.path"``, else None."""
    match = _REFERENCE.match(text)
    return (match.group(1), match.group(2)) if match else None


def import_allowed(module: str, allow_import: bool | Collection[str]) -> bool:
    """True when ``module`` may be imported: ``allow_import`` is True, or names the module or a
    package above it."""
    if allow_import is True:
        return True
    if not allow_import:
        return False
    return any(module == name or module.startswith(name + ".") for name in allow_import)


def refuse(module: str, what: str) -> ImportRefused:
    """The error for a module a read command may not import."""
    return ImportRefused(
        f"{what} comes from module {module!r}, which read commands import only when asked: "
        f"add --import {module}"
    )


def import_modules(names: Collection[str]) -> None:
    """Import each module of ``names`` (modules that register environments or spaces).

    Raises:
        ImportError: naming the module that failed and why.
    """
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"imports must be module names, got {name!r}")
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ImportError(f"cannot import module {name!r} (--import): {err}") from None


def load_reference(
    text: str, *, allow_import: bool | Collection[str] = True, what: str = "reference"
) -> Any:
    """The object named by ``"package.module:attr.path"``.

    Args:
        text: the reference.
        allow_import: True, or the module names that may be imported (see :func:`import_allowed`).
        what: what the reference is for, in error messages (e.g. ``environment 'x:y'``).

    Raises:
        ValueError: ``text`` is not a ``module:attr`` reference.
        ImportRefused: the module is not allowed.
        ImportError: the module cannot be imported.
        KeyError: the module has no such attribute.
    """
    parsed = parse_reference(text)
    if parsed is None:
        raise ValueError(f"{what}: {text!r} is not a module:callable reference")
    module_name, attr = parsed
    if not import_allowed(module_name, allow_import):
        raise refuse(module_name, what)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(f"{what}: cannot import module {module_name!r}: {err}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            hint = ""
            if module_name == "__main__":
                hint = (
                    " (it was defined in a script: resume from that script, or move it to a module)"
                )
            raise KeyError(
                f"{what}: module {module_name!r} has no attribute {attr!r}{hint}"
            ) from None
    return obj


def reference_of(obj: Any) -> str:
    """The ``module:qualname`` reference that :func:`load_reference` turns back into ``obj``.

    Raises:
        ValueError: ``obj`` is local to a function or cannot be found again under its name.
    """
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or not qualname or "<locals>" in qualname:
        raise ValueError(
            f"{obj!r} cannot be named by a module:attribute reference (define it at the top "
            "level of a module)"
        )
    text = f"{module}:{qualname}"
    if load_reference(text) is not obj:
        raise ValueError(f"{text} does not lead back to {obj!r}")
    return text


def entry_point_names() -> list[str]:
    """Names of the installed ``qdtorch.envs`` entry points."""
    return sorted({ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)})


def entry_point(name: str) -> metadata.EntryPoint | None:
    """The installed ``qdtorch.envs`` entry point called ``name``, if any."""
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return ep
    return None
