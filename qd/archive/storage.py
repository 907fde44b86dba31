"""Archive storage: rows of torch tensors, growth, insertion and pyribs' ``add`` contract.

The insertion rules are in :mod:`qd.archive.insertion`, novelty and kernel diversity in
:mod:`qd.archive.neighbours`, ``save``/``load`` in :mod:`qd.archive.files`, the readers of
pyribs's contract (``data``, ``sample_elites``, ``retrieve``, ``stats``) in
:mod:`qd.archive.reading`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from ribs.archives import ArchiveBase

from qd.archive.files import ArchiveFiles
from qd.archive.insertion import InsertionRule, chosen_rows
from qd.archive.neighbours import ArchiveNeighbours
from qd.archive.reading import ArchiveReading


class Archive(ArchiveReading, ArchiveNeighbours, ArchiveFiles, ArchiveBase):
    """Unstructured, growing archive of individuals stored as torch tensors.

    Args:
        solution_dim: genome size.
        measure_dim: size of the behaviour descriptor used by the search.
        ground_truth_dim: size of the environment's ground-truth descriptor (defaults to
            ``measure_dim``).
        extra_fields: ``{name: (shape, dtype)}`` of additional per-row fields.
        k_neighbors: k of the k-NN novelty.
        insertion: which candidates :meth:`add` keeps.
        device: where rows live and novelty is computed.
        seed: seed of the archive's own generator (random insertion, sampling).
        env_spec: the environment's spec as a dict (kept in saved files).
        qd_score_offset: subtracted from objectives in the QD-score.
        initial_capacity: rows allocated up front (doubles when full).
        novelty_backend: ``auto``, ``brute`` or ``kdtree`` (see :mod:`qd.novelty`).
        name: label used in run folders and file headers.
    """

    def __init__(
        self,
        *,
        solution_dim: int,
        measure_dim: int,
        ground_truth_dim: int | None = None,
        extra_fields: dict[str, tuple[tuple[int, ...], torch.dtype]] | None = None,
        k_neighbors: int = 15,
        insertion: InsertionRule | None = None,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        env_spec: dict | None = None,
        qd_score_offset: float = 0.0,
        initial_capacity: int = 1024,
        novelty_backend: str = "auto",
        name: str = "archive",
    ) -> None:
        super().__init__(solution_dim=solution_dim, objective_dim=(), measure_dim=measure_dim)
        if k_neighbors <= 0:
            raise ValueError(f"k_neighbors must be > 0, got {k_neighbors}")
        self.device = torch.device(device)
        self.k_neighbors = int(k_neighbors)
        self.insertion = insertion or InsertionRule()
        self.env_spec = dict(env_spec or {})
        self.qd_score_offset = float(qd_score_offset)
        self.novelty_backend = novelty_backend
        self.name = name
        ground_truth_dim = measure_dim if ground_truth_dim is None else ground_truth_dim
        self._schema: dict[str, tuple[tuple[int, ...], torch.dtype]] = {
            "solution": ((int(solution_dim),), torch.float32),
            "objective": ((), torch.float32),
            "measures": ((int(measure_dim),), torch.float32),
            "ground_truth": ((int(ground_truth_dim),), torch.float32),
            "reward_area": ((), torch.int64),
        }
        for field, (shape, dtype) in (extra_fields or {}).items():
            if field in self._schema or field == "index":
                raise ValueError(f"extra field {field!r} clashes with a built-in field")
            self._schema[field] = (tuple(int(s) for s in shape), dtype)
        self._size = 0
        self._store = {
            f: torch.empty((max(1, initial_capacity), *shape), dtype=dtype, device=self.device)
            for f, (shape, dtype) in self._schema.items()
        }
        self._generator = torch.Generator(device="cpu")
        self._generator.manual_seed(0 if seed is None else int(seed))
        self._kdtree = None  # cached k-D tree of the descriptors (CPU novelty)

    # -- properties ----------------------------------------------------------------------------
    @property
    def field_list(self) -> list[str]:
        """Names of the stored fields (pyribs contract)."""
        return list(self._schema)

    @property
    def dtypes(self) -> dict[str, np.dtype]:
        """numpy dtype of each field (pyribs contract)."""
        out = {f: torch.empty(0, dtype=dt).numpy().dtype for f, (_, dt) in self._schema.items()}
        out["index"] = np.dtype(np.int32)
        return out

    @property
    def schema(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """``{field: (shape, dtype)}``."""
        return dict(self._schema)

    @property
    def capacity(self) -> int:
        """Rows allocated."""
        return self._store["solution"].shape[0]

    @property
    def empty(self) -> bool:
        """True when no row is stored."""
        return self._size == 0

    def __len__(self) -> int:
        return self._size

    def field(self, name: str) -> torch.Tensor:
        """Live rows of one field (a view: do not keep it across adds)."""
        if name not in self._store:
            raise ValueError(f"unknown field {name!r}; fields: {', '.join(self._schema)}")
        return self._store[name][: self._size]

    @property
    def genomes(self) -> torch.Tensor:
        """``[n, solution_dim]`` view of the stored genomes."""
        return self.field("solution")

    @property
    def descriptors(self) -> torch.Tensor:
        """``[n, measure_dim]`` view of the stored behaviour descriptors."""
        return self.field("measures")

    @property
    def objectives(self) -> torch.Tensor:
        """``[n]`` view of the stored objectives."""
        return self.field("objective")

    # -- writing -------------------------------------------------------------------------------
    def _to_tensor(self, name: str, value, batch: int) -> torch.Tensor:
        shape, dtype = self._schema[name]
        tensor = torch.as_tensor(value, device=self.device)
        if tensor.dtype != dtype:
            tensor = tensor.to(dtype)
        if tuple(tensor.shape) != (batch, *shape):
            raise ValueError(
                f"field {name!r} must have shape {[batch, *shape]}, got {list(tensor.shape)}"
            )
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ValueError(f"field {name!r} contains NaN or infinite values")
        return tensor

    def _batch(self, solution, objective, measures, fields: dict) -> dict[str, torch.Tensor]:
        batch = len(solution)
        rows = {
            "solution": self._to_tensor("solution", solution, batch),
            "measures": self._to_tensor("measures", measures, batch),
        }
        obj = torch.zeros(batch) if objective is None else objective
        rows["objective"] = self._to_tensor("objective", obj, batch)
        unknown = set(fields) - set(self._schema)
        if unknown:
            raise ValueError(
                f"unknown field(s) {sorted(unknown)}; archive fields: {', '.join(self._schema)}"
            )
        for name in self._schema:
            if name in rows:
                continue
            if fields.get(name) is not None:
                rows[name] = self._to_tensor(name, fields[name], batch)
            elif name == "ground_truth" and self._schema[name][0] == self._schema["measures"][0]:
                rows[name] = rows["measures"].clone()
            elif name == "reward_area":
                rows[name] = torch.full((batch,), -1, dtype=torch.int64, device=self.device)
            else:
                shape, dtype = self._schema[name]
                rows[name] = torch.zeros((batch, *shape), dtype=dtype, device=self.device)
        return rows

    def _reserve(self, extra: int) -> None:
        needed = self._size + extra
        if needed <= self.capacity:
            return
        new_capacity = self.capacity
        while new_capacity < needed:
            new_capacity *= 2
        for name, tensor in self._store.items():
            grown = torch.empty(
                (new_capacity, *tensor.shape[1:]), dtype=tensor.dtype, device=self.device
            )
            grown[: self._size] = tensor[: self._size]
            self._store[name] = grown

    def _append(self, rows: dict[str, torch.Tensor]) -> torch.Tensor:
        count = rows["solution"].shape[0]
        self._reserve(count)
        for name, value in rows.items():
            self._store[name][self._size : self._size + count] = value
        index = torch.arange(self._size, self._size + count, device=self.device)
        self._size += count
        self._kdtree = None
        return index

    def add(
        self,
        solution,
        objective,
        measures,
        *,
        novelty: torch.Tensor | None = None,
        reference: torch.Tensor | None = None,
        **fields,
    ) -> dict[str, np.ndarray]:
        """Offer a batch of candidates; the insertion rule decides which are stored.

        Args:
            solution: ``[B, solution_dim]`` genomes.
            objective: ``[B]`` objectives (None: zeros).
            measures: ``[B, measure_dim]`` behaviour descriptors.
            novelty: optional precomputed novelty of the candidates; otherwise computed against
                the archive (+ ``reference``) before insertion.
            reference: optional extra reference descriptors for that novelty.
            **fields: ``ground_truth``, ``reward_area`` and declared extra fields.

        Returns:
            pyribs add-info (numpy): ``status`` (0 not added, 1 replaced a worse neighbour,
            2 new row), ``value`` (objective, or the improvement for status 1), ``novelty``,
            ``index`` (row written, -1 if none) and ``local_competition`` for that rule.
        """
        rows = self._batch(solution, objective, measures, fields)
        batch = rows["solution"].shape[0]
        rule = self.insertion
        if novelty is None:
            novelty = self.novelty(rows["measures"], reference=reference)
        novelty = torch.as_tensor(novelty, dtype=torch.float32, device=self.device)
        status = torch.zeros(batch, dtype=torch.int32, device=self.device)
        value = rows["objective"].clone()
        written = torch.full((batch,), -1, dtype=torch.long, device=self.device)
        info: dict[str, np.ndarray] = {}
        chosen = chosen_rows(rule, novelty, empty=self.empty, generator=self._generator)
        if rule.kind == "local_competition":
            local = self._local_competition(rows["measures"], rows["objective"])
            info["local_competition"] = local.cpu().numpy()
            rest = torch.ones(batch, dtype=torch.bool, device=self.device)
            rest[chosen] = False
            self._replace_nearest(rows, torch.nonzero(rest).flatten(), status, value, written)
        chosen = torch.sort(chosen).values
        if chosen.numel():
            written[chosen] = self._append({k: v[chosen] for k, v in rows.items()})
            status[chosen] = 2
        info.update(
            status=status.cpu().numpy(),
            value=value.cpu().numpy(),
            novelty=novelty.cpu().numpy(),
            index=written.cpu().numpy(),
        )
        return info

    def _local_competition(self, measures: torch.Tensor, objective: torch.Tensor) -> torch.Tensor:
        if self.empty:
            return torch.zeros(measures.shape[0], dtype=torch.int32, device=self.device)
        k = min(self.k_neighbors, self._size)
        dist = torch.cdist(measures, self.descriptors)
        neighbours = torch.topk(dist, k, dim=1, largest=False).indices
        lower = self.objectives[neighbours] < objective[:, None]
        return lower.sum(1).to(torch.int32)

    def _replace_nearest(self, rows, candidates, status, value, written) -> None:
        """NSLC rule for candidates that are not novel enough: each replaces its nearest stored
        row if its objective is higher (the best such candidate per row wins, first on ties)."""
        if self.empty or candidates.numel() == 0:
            return
        nearest = torch.cdist(rows["measures"][candidates], self.descriptors).argmin(1)
        gain = rows["objective"][candidates] - self.objectives[nearest]
        best = torch.full((self._size,), -float("inf"), device=self.device)
        best = best.scatter_reduce(0, nearest, gain, "amax")
        winner = (gain > 0) & (gain == best[nearest])
        order = torch.arange(candidates.numel(), device=self.device)
        first = torch.full((self._size,), candidates.numel(), device=self.device)
        first = first.scatter_reduce(0, nearest[winner], order[winner], "amin")
        winner &= first[nearest] == order
        cand, near = candidates[winner], nearest[winner]
        self._kdtree = None
        for name, tensor in self._store.items():
            tensor[near] = rows[name][cand]
        status[cand] = 1
        value[cand] = gain[winner]
        written[cand] = near

    def add_single(self, solution, objective, measures, **fields) -> dict:
        """pyribs contract: :meth:`add` for one candidate."""
        batched = {k: None if v is None else torch.as_tensor(v)[None] for k, v in fields.items()}
        info = self.add(
            torch.as_tensor(solution)[None],
            None if objective is None else torch.as_tensor(objective, dtype=torch.float32)[None],
            torch.as_tensor(measures)[None],
            **batched,
        )
        return {k: v[0] for k, v in info.items()}

    def rows(self, index: torch.Tensor | slice | None = None) -> dict[str, torch.Tensor]:
        """Copies of rows ``index`` (all rows by default) of every field."""
        index = slice(None) if index is None else index
        return {f: self._store[f][: self._size][index].clone() for f in self._schema}

    def keep(self, index: torch.Tensor) -> None:
        """Keep only rows ``index``, in that order (e.g. to remove rows taken elsewhere)."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.device)
        if index.numel() and (index.min() < 0 or index.max() >= self._size):
            raise IndexError(f"keep: rows out of range for archive {self.name!r} ({self._size})")
        for tensor in self._store.values():
            tensor[: len(index)] = tensor[: self._size][index]
        self._size = len(index)
        self._kdtree = None

    def clear(self) -> None:
        """Remove every row (capacity is kept)."""
        self._size = 0
        self._kdtree = None

    def reembed(self, fn: Callable[[dict[str, torch.Tensor]], torch.Tensor]) -> None:
        """Recompute every stored descriptor: ``measures = fn(data)``; no row is dropped.

        ``fn`` receives the live rows of every field (torch, on the archive's device) and must
        return ``[len(self), d]``; ``d`` may differ from the current ``measure_dim``.
        """
        new = torch.as_tensor(fn(self.data(return_type="torch")), device=self.device)
        if new.ndim != 2 or new.shape[0] != self._size:
            raise ValueError(f"reembed must return [{self._size}, d], got {list(new.shape)}")
        if not torch.isfinite(new).all():
            raise ValueError("reembed returned NaN or infinite descriptors")
        dim = new.shape[1]
        if dim != self._schema["measures"][0][0]:
            self._schema["measures"] = ((dim,), torch.float32)
            self._measure_dim = dim
            self._store["measures"] = torch.empty((self.capacity, dim), device=self.device)
        self._store["measures"][: self._size] = new.float()
        self._kdtree = None

    def update_field(self, name: str, values: torch.Tensor) -> None:
        """Overwrite an extra field of every stored row (e.g. surprise after an AE retraining)."""
        if name not in self._schema or name in ("solution", "measures", "objective"):
            raise KeyError(f"{name!r} is not an updatable field of archive {self.name!r}")
        shape, dtype = self._schema[name]
        values = torch.as_tensor(values, device=self.device)
        if tuple(values.shape) != (self._size, *shape):
            raise ValueError(
                f"update_field({name!r}) expects {[self._size, *shape]}, got {list(values.shape)}"
            )
        self._store[name][: self._size] = values.to(dtype)
