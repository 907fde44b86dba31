"""Reading an archive: pyribs's contract (``data``, iteration, ``retrieve``, ``sample_elites``,
``stats``) over the rows that :mod:`qd.archive.storage` keeps."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from ribs.archives import ArchiveDataFrame, ArchiveStats


class ArchiveReading:
    """Readers mixed into :class:`qd.archive.Archive` (they use its fields and generator)."""

    @property
    def stats(self) -> ArchiveStats:
        """pyribs statistics; ``coverage`` is over the ground-truth grid when the env is known."""
        n = self._size
        if n == 0:
            return ArchiveStats(0, np.float32(0.0), np.float32(0.0), np.float32(0.0), None, None)
        obj = self.objectives.double()
        qd = float((obj - self.qd_score_offset).sum())
        return ArchiveStats(
            num_elites=n,
            coverage=np.float32(self._grid_coverage()),
            qd_score=np.float32(qd),
            norm_qd_score=np.float32(qd / n),
            obj_max=np.float32(obj.max()),
            obj_mean=np.float32(obj.mean()),
        )

    def _grid_coverage(self) -> float:
        spec = self.env_spec
        if not spec.get("grid_shape"):
            return float("nan")
        from qd.metrics import grid_cells

        cells = grid_cells(self.field("ground_truth"), spec)
        return float(torch.unique(cells).numel() / math.prod(spec["grid_shape"]))

    def data(self, fields=None, return_type=None):
        """Stored rows (pyribs contract).

        ``return_type``: ``dict`` (numpy, default), ``tuple``, ``pandas`` (ArchiveDataFrame) or
        ``torch`` (dict of tensors on the archive's device, not copied).
        """
        single = isinstance(fields, str)
        names = [fields] if single else list(fields or [*self._schema, "index"])
        for name in names:
            if name not in self._schema and name != "index":
                raise ValueError(f"unknown field {name!r}; fields: {', '.join(self._schema)}")
        if return_type is None:
            return_type = "array" if single else "dict"
        index = torch.arange(self._size, device=self.device)
        tensors = {n: index if n == "index" else self.field(n) for n in names}
        if return_type == "torch":
            return tensors
        arrays = {n: t.cpu().numpy().copy() for n, t in tensors.items()}
        if return_type == "array":
            return arrays[names[0]]
        if return_type == "dict":
            return arrays
        if return_type == "tuple":
            return tuple(arrays[n] for n in names)
        if return_type == "pandas":
            columns = {}
            for name, arr in arrays.items():
                if arr.ndim == 1:
                    columns[name] = arr
                elif arr.ndim == 2:
                    for j in range(arr.shape[1]):
                        columns[f"{name}_{j}"] = arr[:, j]
                else:
                    raise ValueError(f"field {name!r} has >1-D rows; pass fields=... without it")
            return ArchiveDataFrame(columns)
        raise ValueError(f"unknown return_type {return_type!r}")

    def __iter__(self) -> Iterator[dict]:
        data = self.data()
        for i in range(self._size):
            yield {name: values[i] for name, values in data.items()}

    def retrieve(self, measures):
        """Nearest stored row of each query (pyribs contract; ``occupied`` False when empty)."""
        measures = torch.as_tensor(measures, dtype=torch.float32, device=self.device)
        if self.empty:
            occupied = np.zeros(len(measures), dtype=bool)
            return occupied, {n: None for n in self._schema}
        nearest = torch.cdist(measures, self.descriptors).argmin(1)
        rows = {n: self.field(n)[nearest].cpu().numpy() for n in self._schema}
        rows["index"] = nearest.cpu().numpy()
        return np.ones(len(measures), dtype=bool), rows

    def retrieve_single(self, measures):
        """:meth:`retrieve` for one query."""
        occupied, rows = self.retrieve(np.asarray(measures)[None])
        return bool(occupied[0]), {k: None if v is None else v[0] for k, v in rows.items()}

    def sample(self, n: int, *, replace: bool = True) -> dict[str, torch.Tensor]:
        """``n`` rows drawn uniformly (archive generator), as a dict of tensors."""
        if self.empty:
            raise IndexError("cannot sample from an empty archive")
        if not replace and n > self._size:
            raise ValueError(f"cannot sample {n} rows without replacement from {self._size}")
        if replace:
            idx = torch.randint(self._size, (n,), generator=self._generator)
        else:
            idx = torch.randperm(self._size, generator=self._generator)[:n]
        idx = idx.to(self.device)
        out = {name: self.field(name)[idx] for name in self._schema}
        out["index"] = idx
        return out

    def sample_elites(self, n: int, replace: bool = True) -> dict[str, np.ndarray]:
        """pyribs contract: :meth:`sample` as numpy arrays."""
        return {k: v.cpu().numpy() for k, v in self.sample(n, replace=replace).items()}
