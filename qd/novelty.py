"""Exact k-nearest-neighbour novelty, chunked so memory stays bounded.

Novelty of a query = mean Euclidean distance to its k nearest reference points, excluding the
query's own entry when it is one of the references (``self_index``). Two exact back-ends:

* ``brute`` (any device): per chunk of queries, squared distances by matrix product select
  ``k + slack`` candidates, whose distances are then recomputed exactly (difference vectors),
  so the result does not suffer from the matrix-product shortcut's rounding.
* ``kdtree`` (CPU): scipy's ``cKDTree`` (exact), much faster for low-dimensional descriptors.

``auto`` uses the KD-tree on CPU for descriptors of up to ``KDTREE_MAX_DIM`` dimensions and the
brute force otherwise (see ``benchmarks/novelty.py`` for the measurements behind the choice).
"""

from __future__ import annotations

import numpy as np
import torch

KDTREE_MAX_DIM = 16
_SLACK = 8
# scipy query threads: for cheap low-dimensional queries extra threads lose to the wake-up of
# torch's OpenMP threads (measured: 1 thread 10 ms vs all 17 ms at d = 2); at d = 10 all cores
# win (0.65 s vs 1.2 s).
_THREADED_FROM_DIM = 5


def resolve_backend(backend: str, device: torch.device, dim: int) -> str:
    """The back-end ``auto`` stands for on this device and descriptor size."""
    if backend == "auto":
        return "kdtree" if (device.type == "cpu" and dim <= KDTREE_MAX_DIM) else "brute"
    if backend not in ("brute", "kdtree"):
        raise ValueError(f"unknown novelty backend {backend!r}; use auto, brute or kdtree")
    return backend


def build_tree(references: torch.Tensor):
    """scipy k-D tree over ``references`` (exact queries in float64)."""
    from scipy.spatial import cKDTree

    refs = references.detach().cpu().double().numpy()
    return cKDTree(refs)


def knn_distances(
    queries: torch.Tensor,
    references: torch.Tensor,
    k: int,
    *,
    self_index: torch.Tensor | None = None,
    backend: str = "auto",
    tree=None,
    chunk_elements: int = 2**24,
) -> torch.Tensor:
    """Distances ``[Q, m]`` from each query to (at least) its k nearest references.

    Entries for the query's own row (``self_index``) are ``inf``; ``m`` is at most
    ``k + 1 + slack``. Pass a prebuilt ``tree`` (``build_tree(references)``) to skip the build.
    """
    if queries.ndim != 2 or references.ndim != 2 or queries.shape[1] != references.shape[1]:
        raise ValueError(
            f"queries [Q, d] and references [N, d] must share d, got {list(queries.shape)} "
            f"and {list(references.shape)}"
        )
    if k <= 0:
        raise ValueError(f"k must be > 0, got {k}")
    n_queries, n_refs = queries.shape[0], references.shape[0]
    if self_index is None:
        self_index = torch.full((n_queries,), -1, dtype=torch.long, device=queries.device)
    if n_queries == 0 or n_refs == 0:
        return torch.full((n_queries, 0), float("inf"), device=queries.device)
    backend = resolve_backend(backend, queries.device, queries.shape[1])
    if backend == "kdtree":
        return _kdtree(queries, references, k, self_index, tree)
    return _brute(queries, references, k, self_index, chunk_elements)


def knn_novelty(
    queries: torch.Tensor,
    references: torch.Tensor,
    k: int,
    *,
    self_index: torch.Tensor | None = None,
    backend: str = "auto",
    chunk_elements: int = 2**24,
) -> torch.Tensor:
    """Mean distance of each query to its ``k`` nearest references.

    Args:
        queries: ``[Q, d]``.
        references: ``[N, d]`` on the same device.
        k: number of neighbours (fewer are used when fewer references exist).
        self_index: optional ``[Q]`` long, the row of ``references`` that *is* query q
            (excluded from its neighbours), or -1 when the query is not a reference.
        backend: ``auto``, ``brute`` or ``kdtree``.
        chunk_elements: most query x reference distances held at once (brute force).

    Returns:
        ``[Q]`` float32 novelty (0 where no reference other than the query itself exists).
    """
    dist = knn_distances(
        queries,
        references,
        k,
        self_index=self_index,
        backend=backend,
        chunk_elements=chunk_elements,
    )
    return mean_of_k_smallest(dist, k)


def mean_of_k_smallest(dist: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of the ``k`` smallest finite values per row (inf marks excluded entries)."""
    if dist.shape[1] == 0:
        return torch.zeros(dist.shape[0], dtype=torch.float32, device=dist.device)
    if dist.shape[1] <= k and bool(torch.isfinite(dist).all()):  # nothing excluded: plain mean
        return dist.mean(1, dtype=torch.float32)
    kk = min(k, dist.shape[1])
    smallest = torch.topk(dist, kk, dim=1, largest=False).values
    finite = torch.isfinite(smallest)
    total = torch.where(finite, smallest, torch.zeros_like(smallest)).sum(1)
    count = finite.sum(1)
    return torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total)).float()


def _brute(queries, references, k, self_index, chunk_elements) -> torch.Tensor:
    queries = queries.float()
    references = references.float()
    n_refs = references.shape[0]
    ref_sq = (references * references).sum(1)
    rows = max(1, chunk_elements // max(n_refs, 1))
    out = []
    n_candidates = min(k + _SLACK + 1, n_refs)
    for start in range(0, queries.shape[0], rows):
        q = queries[start : start + rows]
        own = self_index[start : start + rows]
        d2 = torch.addmm(ref_sq[None, :], q, references.T, alpha=-2).add_((q * q).sum(1)[:, None])
        has_self = own >= 0
        rows_idx = torch.arange(q.shape[0], device=q.device)
        d2[rows_idx[has_self], own[has_self]] = float("inf")
        candidates = torch.topk(d2, n_candidates, dim=1, largest=False).indices
        exact = torch.linalg.vector_norm(q[:, None, :] - references[candidates], dim=-1)
        out.append(torch.where(candidates == own[:, None], float("inf"), exact))
    return torch.cat(out)


def _kdtree(queries, references, k, self_index, tree) -> torch.Tensor:
    tree = build_tree(references) if tree is None else tree
    own = self_index.detach().cpu().numpy()
    has_self = bool((own >= 0).any())
    kk = min(k + 1 if has_self else k, references.shape[0])
    dist, idx = tree.query(
        queries.detach().cpu().double().numpy(),
        k=kk,
        workers=-1 if queries.shape[1] >= _THREADED_FROM_DIM else 1,
    )
    if kk == 1:
        dist, idx = dist[:, None], idx[:, None]
    if has_self:
        dist = np.where(idx == own[:, None], np.inf, dist)
    return torch.from_numpy(dist.astype(np.float32)).to(queries.device)
