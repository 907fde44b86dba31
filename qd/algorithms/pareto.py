"""Pareto tools for NSGA-II-style survivor selection, vectorised in torch (every objective
is maximised).

* :func:`non_dominated_sort`: front rank of every point (0 = non-dominated), Deb et al. 2002's
  fast non-dominated sort with the dominance relation computed as one ``[N, N]`` tensor (the
  only Python loop is over fronts).
* :func:`crowding_distance`: Deb et al.'s crowding distance inside each front, all fronts at
  once, made deterministic: ties in an objective are ordered by index, an objective that is
  constant over a front adds nothing, a front with a single distinct point gives it ``inf``,
  and a repeated point (same objective vector as a lower-indexed point) gets 0 (as pymoo's
  ``calc_crowding_distance`` with duplicate filtering), so copies never win on spread.
* :func:`nsga2_order` / :func:`nsga2_select`: fronts in order, each front by decreasing
  crowding distance, then index; the first ``n`` are NSGA-II's survivors (whole first fronts,
  the last front cut by crowding).
* :func:`local_competition`: NSLC's local-competition score (Lehman & Stanley 2011): how many of
  a point's k nearest neighbours in a reference set have a strictly lower reward.

Why not a library: pymoo is not a dependency, and evotorch 0.6's public functional API
(``evotorch.operators.functional.pareto_utility``) ranks by *domination count* (how many points
dominate one), not by non-dominated fronts, so a point dominated by three front-0 points ranks
below a front-2 point; its front sort (``SolutionBatch.arg_pareto_sort``) needs a ``Problem``
and a ``SolutionBatch`` and rests on private helpers (``evotorch.core._pareto_sort``) whose
crowding uses unstable sorts and no duplicate rule.
"""

from __future__ import annotations

import torch

_CHUNK_ELEMENTS = 2**24


def _check(objectives: torch.Tensor) -> torch.Tensor:
    if objectives.ndim != 2:
        raise ValueError(f"objectives must be [N, M], got {list(objectives.shape)}")
    if not bool(torch.isfinite(objectives).all()):
        raise ValueError("objectives must be finite")
    return objectives


def dominates(objectives: torch.Tensor) -> torch.Tensor:
    """``[N, N]`` bool, ``[i, j]`` True when point i Pareto-dominates point j (maximisation:
    no worse on every objective and better on at least one)."""
    f = _check(objectives)
    a, b = f[:, None, :], f[None, :, :]
    return (a >= b).all(-1) & (a > b).any(-1)


def non_dominated_sort(objectives: torch.Tensor) -> torch.Tensor:
    """Front rank ``[N]`` (long) of every row of ``objectives`` ``[N, M]``; 0 = non-dominated.

    Equal points never dominate each other, so copies share a front.
    """
    dom = dominates(objectives)
    n = dom.shape[0]
    ranks = torch.full((n,), -1, dtype=torch.long, device=dom.device)
    remaining = dom.sum(0)  # how many unranked points dominate each point
    unranked = torch.ones(n, dtype=torch.bool, device=dom.device)
    rank = 0
    while bool(unranked.any()):
        front = unranked & (remaining == 0)
        ranks[front] = rank
        unranked &= ~front
        remaining = remaining - dom[front].sum(0)
        rank += 1
    return ranks


def fronts(ranks: torch.Tensor) -> list[torch.Tensor]:
    """Indices of each front, best first, increasing index inside a front."""
    if ranks.numel() == 0:
        return []
    return [torch.nonzero(ranks == r).flatten() for r in range(int(ranks.max()) + 1)]


def _lex_order(*keys: torch.Tensor) -> torch.Tensor:
    """Permutation sorting by ``keys[0]``, then ``keys[1]``, ..., then index (stable sorts)."""
    order = torch.arange(keys[0].numel(), device=keys[0].device)
    for key in reversed(keys):
        order = order[torch.sort(key[order], stable=True).indices]
    return order


def crowding_distance(objectives: torch.Tensor, ranks: torch.Tensor | None = None) -> torch.Tensor:
    """Crowding distance ``[N]`` of every point inside its front (Deb et al. 2002).

    For each objective with a non-zero range over the front, the front's distinct points are
    ordered by that objective (then index); the first and last get ``inf`` and every other point
    adds ``(next - previous) / (front max - front min)``. See the module docstring for ties,
    constant objectives, single-point fronts and duplicates.

    Args:
        objectives: ``[N, M]``, maximised.
        ranks: front ranks (default: :func:`non_dominated_sort`).
    """
    f = _check(objectives)
    n, m = f.shape
    if ranks is None:
        ranks = non_dominated_sort(f)
    dist = torch.zeros(n, dtype=f.dtype, device=f.device)
    if n == 0:
        return dist
    index = torch.arange(n, device=f.device)
    # Duplicates: equal vectors have equal ranks; keep the lowest index of each distinct vector.
    _, group = torch.unique(f, dim=0, return_inverse=True)
    first = torch.full((n,), n, dtype=torch.long, device=f.device)
    first = first.scatter_reduce(0, group, index, "amin")
    distinct = torch.nonzero(first[group] == index).flatten()
    fd, rd = f[distinct], ranks[distinct]
    n_fronts = int(rd.max()) + 1
    per_front = torch.bincount(rd, minlength=n_fronts)
    score = torch.zeros(len(distinct), dtype=f.dtype, device=f.device)
    inf = torch.tensor(float("inf"), dtype=f.dtype, device=f.device)
    for j in range(m):
        value = fd[:, j]
        low = torch.full((n_fronts,), float("inf"), dtype=f.dtype, device=f.device)
        high = torch.full((n_fronts,), -float("inf"), dtype=f.dtype, device=f.device)
        high = high.scatter_reduce(0, rd, value, "amax")
        spread = high - low.scatter_reduce(0, rd, value, "amin")
        order = _lex_order(rd, value)
        v, r = value[order], rd[order]
        same_prev = torch.zeros_like(r, dtype=torch.bool)
        same_next = torch.zeros_like(r, dtype=torch.bool)
        same_prev[1:] = r[1:] == r[:-1]
        same_next[:-1] = r[:-1] == r[1:]
        prev = torch.cat([v[:1], v[:-1]])
        nxt = torch.cat([v[1:], v[-1:]])
        width = spread[r]
        inner = (nxt - prev) / torch.where(width > 0, width, torch.ones_like(width))
        add = torch.where(same_prev & same_next, inner, inf)
        add = torch.where(width > 0, add, torch.zeros_like(add))
        score[order] += add
    score[per_front[rd] == 1] = inf
    dist[distinct] = score
    return dist


def nsga2_order(objectives: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All points in NSGA-II's preference order: by front, then decreasing crowding distance,
    then index. Returns ``(order, ranks, crowding)``."""
    ranks = non_dominated_sort(objectives)
    crowd = crowding_distance(objectives, ranks)
    return _lex_order(ranks, -crowd), ranks, crowd


def nsga2_select(objectives: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of NSGA-II's ``n`` survivors: whole fronts best first, the front that does not
    fit cut by decreasing crowding distance (ties: lower index first)."""
    return nsga2_order(objectives)[0][: max(0, int(n))]


def local_competition(
    measures: torch.Tensor,
    rewards: torch.Tensor,
    reference: torch.Tensor,
    reference_rewards: torch.Tensor,
    k: int,
    *,
    self_index: torch.Tensor | None = None,
) -> torch.Tensor:
    """Local-competition score ``[Q]`` (long): how many of each query's ``k`` nearest reference
    points (Euclidean, in behaviour space) have a strictly lower reward.

    Args:
        measures: ``[Q, d]`` query descriptors.
        rewards: ``[Q]`` query rewards.
        reference: ``[N, d]`` reference descriptors.
        reference_rewards: ``[N]``.
        k: neighbours (all other references when fewer exist).
        self_index: optional ``[Q]`` row of each query in ``reference`` (-1: none); that row is
            not its own neighbour.

    Distances are exact (no matrix-product shortcut); among references at the k-th smallest
    distance the lower indices are the neighbours, so the score does not depend on the device.
    """
    if k <= 0:
        raise ValueError(f"k must be > 0, got {k}")
    measures = measures.float()
    reference = reference.to(measures.device).float()
    reference_rewards = reference_rewards.to(measures.device)
    n_queries, n_refs = measures.shape[0], reference.shape[0]
    out = torch.zeros(n_queries, dtype=torch.long, device=measures.device)
    if n_queries == 0 or n_refs == 0:
        return out
    if self_index is None:
        self_index = torch.full((n_queries,), -1, dtype=torch.long, device=measures.device)
    self_index = self_index.to(measures.device, torch.long)
    kk = min(int(k), n_refs)
    rows = max(1, _CHUNK_ELEMENTS // n_refs)
    for start in range(0, n_queries, rows):
        q = measures[start : start + rows]
        own = self_index[start : start + rows]
        dist = torch.cdist(q, reference, compute_mode="donot_use_mm_for_euclid_dist")
        has_self = own >= 0
        dist[torch.nonzero(has_self).flatten(), own[has_self]] = float("inf")
        nearest = torch.topk(dist, kk, dim=1, largest=False)
        kth = nearest.values[:, -1:]  # the k-th smallest distance, whoever holds it
        score = (reference_rewards[nearest.indices] < rewards[start : start + rows, None]) & (
            torch.isfinite(nearest.values)  # a query with fewer than k others: all of them
        )
        score = score.sum(1)
        # Rows where more than k references lie within the k-th distance: topk chose among the
        # tied ones arbitrarily; take the lowest rows instead.
        tied_rows = torch.nonzero((dist <= kth).sum(1) > kk).flatten()
        if tied_rows.numel():
            d, t = dist[tied_rows], kth[tied_rows]
            near = d < t
            tied = d == t
            near |= tied & (torch.cumsum(tied, 1) <= kk - near.sum(1, keepdim=True))
            near &= torch.isfinite(d)
            beaten = reference_rewards[None, :] < rewards[start : start + rows][tied_rows, None]
            score[tied_rows] = (near & beaten).sum(1)
        out[start : start + rows] = score
    return out
