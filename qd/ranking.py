"""Ranking an archive's rows for ``qd inspect --top``: by a field, a component of a vector
field (``ground_truth[0]``) or novelty, and which of a run's archives holds the best."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from qd.archive import Archive

_COMPONENT = re.compile(r"^(\w+)\[(-?\d+)\]$")


def ranking_values(archive: Archive, by: str) -> torch.Tensor:
    """``[n]`` float64 values to rank the rows by.

    ``by``: a scalar field (``objective``, ``reward_area``...), one component of a vector field
    (``ground_truth[1]``, ``measures[-1]``), or ``novelty`` (w.r.t. the other rows).
    """
    if by == "novelty":
        return archive.novelty(archive.descriptors, self_index=torch.arange(len(archive))).double()
    match = _COMPONENT.match(by)
    name, component = (match.group(1), int(match.group(2))) if match else (by, None)
    if name not in archive.field_list:
        raise ValueError(
            f"--by {by!r}: archive {archive.name!r} has no field {name!r}; fields: "
            f"{', '.join(archive.field_list)}, novelty (a vector field's component: FIELD[i])"
        )
    field = archive.field(name)
    shape = list(field.shape[1:])
    if component is None:
        if field.ndim != 1:
            raise ValueError(
                f"--by needs a scalar field; {name!r} has shape {shape}: "
                f"rank by one component, e.g. --by '{name}[0]'"
            )
        return field.double()
    if field.ndim != 2 or not -shape[0] <= component < shape[0]:
        raise ValueError(f"--by {by!r}: {name!r} has shape {shape}, no component {component}")
    return field[:, component].double()


def top_individuals(archive: Archive, n: int, by: str = "objective") -> list[dict]:
    """The ``n`` rows with the largest ``by`` (see :func:`ranking_values`)."""
    values = ranking_values(archive, by)
    order = values.argsort(descending=True, stable=True)[:n].tolist()
    rows = []
    for i in order:
        rows.append(
            {
                "index": i,
                by: float(values[i]),
                "objective": float(archive.objectives[i]),
                "reward_area": int(archive.field("reward_area")[i]),
                "ground_truth": [round(float(v), 5) for v in archive.field("ground_truth")[i]],
                "descriptor": [round(float(v), 5) for v in archive.descriptors[i]],
            }
        )
    return rows


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
        archive = Archive.load(files[name])
        if archive.empty or (_COMPONENT.sub(r"\1", by) not in archive.field_list):
            continue
        value = float(ranking_values(archive, by).max())
        if value > best_value:
            best_name, best_value = name, value
    return best_name
