"""Novelty and diversity of an archive's rows: exact k-NN novelty of queries against the
stored descriptors (see :mod:`qd.novelty` for the backends) and the RBF log-det diversity."""

from __future__ import annotations

import torch

from qd.archive.kernels import rbf_log_det
from qd.novelty import build_tree, knn_distances, mean_of_k_smallest, resolve_backend


class ArchiveNeighbours:
    """Novelty and diversity mixed into :class:`qd.archive.Archive` (they use its descriptors,
    ``k_neighbors``, ``novelty_backend`` and cached k-D tree)."""

    def novelty(
        self,
        queries: torch.Tensor,
        *,
        reference: torch.Tensor | None = None,
        self_index: torch.Tensor | None = None,
        k: int | None = None,
    ) -> torch.Tensor:
        """Exact k-NN novelty of ``queries`` against the archive (+ ``reference`` rows).

        Args:
            queries: ``[Q, measure_dim]``.
            reference: optional extra reference descriptors (population, offspring...),
                appended after the archive's rows.
            self_index: optional ``[Q]`` row of each query in ``[archive; reference]``
                (-1 if the query is not in it); that row is not its own neighbour.
            k: neighbours (default ``k_neighbors``).
        """
        queries = torch.as_tensor(queries, dtype=torch.float32, device=self.device)
        k = k or self.k_neighbors
        n = self._size
        if self_index is None:
            self_index = torch.full((len(queries),), -1, dtype=torch.long, device=self.device)
        self_index = torch.as_tensor(self_index, dtype=torch.long, device=self.device)
        none = torch.full_like(self_index, -1)
        parts = []
        if n:
            backend = resolve_backend(self.novelty_backend, self.device, self.measure_dim)
            own = torch.where(self_index < n, self_index, none)
            parts.append(
                knn_distances(
                    queries,
                    self.descriptors,
                    k,
                    self_index=own,
                    backend=backend,
                    tree=self._tree(backend),
                )
            )
        if reference is not None and len(reference):
            reference = torch.as_tensor(reference, dtype=torch.float32, device=self.device)
            own = torch.where(self_index >= n, self_index - n, none)
            parts.append(
                knn_distances(queries, reference, k, self_index=own, backend=self.novelty_backend)
            )
        if not parts:
            return torch.zeros(len(queries), device=self.device)
        return mean_of_k_smallest(torch.cat(parts, 1), k)

    def _tree(self, backend: str):
        """k-D tree over the stored descriptors, rebuilt only after the archive changed."""
        if backend != "kdtree":
            return None
        if self._kdtree is None:
            self._kdtree = build_tree(self.descriptors)
        return self._kdtree

    def kernel_diversity(
        self, index: torch.Tensor | None = None, *, lengthscale: float = 1.0, jitter: float = 1e-6
    ) -> torch.Tensor:
        """Log det of the RBF kernel over the stored descriptors (rows ``index``, default all)."""
        desc = self.descriptors if index is None else self.descriptors[index]
        return rbf_log_det(desc, lengthscale=lengthscale, jitter=jitter)
