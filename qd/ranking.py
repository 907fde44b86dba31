"""Ranking an archive's rows for ``qd inspect --top``: by a field, a component of a vector
field (``ground_truth[0]``) or novelty, and which of a run's archives holds the best.

Rows are ranked as numpy arrays, so ranking an archive file by a field needs no torch
(:func:`top_in_file`); only ``novelty`` loads the archive with torch.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qd.archive.peek import read_arrays

if TYPE_CHECKING:
    from qd.archive import Archive

_COMPONENT = re.compile(r"^(\w+)\[(-?\d+)\]$")
_SHOWN = ("objective", "reward_area", "ground_truth", "measures")


def field_name(by: str) -> str:
    """The field ``by`` ranks on (``ground_truth`` for ``ground_truth[0]``)."""
    match = _COMPONENT.match(by)
    return match.group(1) if match else by


def ranking_values(fields: dict[str, np.ndarray], by: str, name: str = "archive") -> np.ndarray:
    """``[n]`` float64 values of ``by`` over the rows ``fields`` (numpy, one array per field).

    ``by``: a scalar field (``objective``, ``reward_area``...) or one component of a vector
    field (``ground_truth[1]``, ``measures[-1]``); ``name`` names the archive in errors.
    """
    match = _COMPONENT.match(by)
    field, component = (match.group(1), int(match.group(2))) if match else (by, None)
    if field not in fields:
        raise ValueError(
            f"--by {by!r}: archive {name!r} has no field {field!r}; fields: "
            f"{', '.join(fields)}, novelty (a vector field's component: FIELD[i])"
        )
    values = fields[field]
    shape = list(values.shape[1:])
    if component is None:
        if values.ndim != 1:
            raise ValueError(
                f"--by needs a scalar field; {field!r} has shape {shape}: "
                f"rank by one component, e.g. --by '{field}[0]'"
            )
        return values.astype(np.float64)
    if values.ndim != 2 or not -shape[0] <= component < shape[0]:
        raise ValueError(f"--by {by!r}: {field!r} has shape {shape}, no component {component}")
    return values[:, component].astype(np.float64)


def top_rows(fields: dict[str, np.ndarray], values: np.ndarray, n: int, by: str) -> list[dict]:
    """The ``n`` rows with the largest ``values`` (the first of equal ones first)."""
    order = np.argsort(-values, kind="stable")[:n]
    return [
        {
            "index": int(i),
            by: float(values[i]),
            "objective": float(fields["objective"][i]),
            "reward_area": int(fields["reward_area"][i]),
            "ground_truth": [round(float(v), 5) for v in fields["ground_truth"][i]],
            "descriptor": [round(float(v), 5) for v in fields["measures"][i]],
        }
        for i in order
    ]


def top_individuals(archive: Archive, n: int, by: str = "objective") -> list[dict]:
    """The ``n`` rows of ``archive`` with the largest ``by`` (a field, ``FIELD[i]`` or
    ``novelty`` w.r.t. the other rows)."""
    import torch

    fields = {f: archive.field(f).detach().cpu().numpy() for f in archive.field_list}
    if by == "novelty":
        index = torch.arange(len(archive))
        values = archive.novelty(archive.descriptors, self_index=index).double().cpu().numpy()
    else:
        values = ranking_values(fields, by, archive.name)
    return top_rows(fields, values, n, by)


def file_fields(path: str | Path) -> dict[str, np.ndarray]:
    """The live rows of an archive file's fields (numpy; checksum verified)."""
    header, arrays = read_arrays(path)
    size = int(header.get("size", 0))
    names = header.get("schema") or {k: None for k in arrays if not k.startswith("__")}
    return {f: arrays[f][:size] for f in names if f in arrays}


def top_in_file(path: str | Path, n: int, by: str) -> list[dict]:
    """:func:`top_individuals` of an archive file by a field, read without torch."""
    fields = file_fields(path)
    missing = [f for f in _SHOWN if f not in fields]
    if missing:
        raise ValueError(f"{path}: the archive has no {', '.join(missing)} field")
    return top_rows(fields, ranking_values(fields, by, Path(path).stem), n, by)


def archive_holding_best(files: dict[str, Path], main: str, by: str) -> str:
    """The name of the archive (among ``files``) whose rows reach the largest ``by``.

    On a tie the ``main`` archive wins (it lists more rows), then the others by name. Novelty
    is relative to each archive's rows, so ``by="novelty"`` keeps ``main``.
    """
    if by == "novelty" or not files:
        return main
    order = sorted(files, key=lambda name: (name != main, name))
    best_name, best_value = main, -float("inf")
    for name in order:
        fields = file_fields(files[name])
        if field_name(by) not in fields or not len(fields[field_name(by)]):
            continue
        value = float(ranking_values(fields, by, name).max())
        if value > best_value:
            best_name, best_value = name, value
    return best_name
