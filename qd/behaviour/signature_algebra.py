"""The truncated tensor algebra behind :mod:`qd.behaviour.signatures`: signature levels by
Chen's recursion, the tensor logarithm, Lyndon words and the Lyndon ("brackets") basis.

Algorithm. With increments ``D_t = x_{t+1} - x_t`` and ``S_t`` the signature of the path up to
point ``t``, Chen's identity for a linear segment gives, level by level,
``S^(n)_{t+1} = S^(n)_t + sum_{k=1..n} S^(n-k)_t (x) D_t^(x)k / k!``. The increment of level
``n`` (a Horner scheme in ``D_t``) only needs lower levels, so each level is one vectorised
pass over all steps and paths followed by a cumulative sum along time: no Python loop over
the path length, work ``O(B T sum_n n d**n)``, memory ``O(B T d**(m-1))`` bounded by
processing the batch in chunks; the top level needs no prefix values and is a batched matrix
product over time.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

# Working memory per batch chunk (bytes). CPU: cache-sized chunks were fastest (measured for
# B=1000, T=2000, d=2: 8 MiB beats 32-128 MiB by 1.3-3x at depth 5). Accelerators: large
# chunks, few kernel launches, memory still bounded.
_CHUNK_BYTES = {"cpu": 8 * 2**20, "other": 512 * 2**20}
# Largest dense Lyndon-basis matrix (entries) that "brackets" will build for one level.
_MAX_BRACKET_ENTRIES = 50_000_000


# --- tensor algebra --------------------------------------------------------------------------


def _outer(a: Tensor, b: Tensor) -> Tensor:
    """Row-major flattened tensor product over the last dimension, batched over the rest."""
    return (a.unsqueeze(-1) * b.unsqueeze(-2)).flatten(-2)


def _signature_levels(increments: Tensor, depth: int) -> list[Tensor]:
    """Signature levels ``[B, d**n]``, ``n = 1..depth``, processing the batch in chunks."""
    batch, steps, channels = increments.shape
    if steps == 0:
        return [increments.new_zeros(batch, channels**n) for n in range(1, depth + 1)]
    # Floats held per path at the widest level: lower-level prefixes plus a few temporaries.
    per_step = sum(channels**j for j in range(1, depth)) + 3 * channels ** (depth - 1)
    per_path = steps * per_step * increments.element_size()
    budget = _CHUNK_BYTES["cpu" if increments.device.type == "cpu" else "other"]
    chunk = max(1, budget // per_path)
    if chunk >= batch:
        return _signature_levels_chunk(increments, depth)
    parts = [_signature_levels_chunk(c, depth) for c in increments.split(chunk)]
    return [torch.cat(level, dim=0) for level in zip(*parts, strict=True)]


def _signature_levels_chunk(increments: Tensor, depth: int) -> list[Tensor]:
    """Level-by-level Chen recursion vectorised over steps (see the module docstring).

    Works time-last (``[B, d**n, steps]``) so that every element-wise op and cumulative sum
    runs over long contiguous rows even for two or three channels.
    """
    batch = increments.shape[0]
    inc = increments.transpose(1, 2).contiguous()  # [B, d, N]
    levels: list[Tensor] = []
    prefix: list[Tensor] = []  # prefix[j - 1][..., t]: level j of the signature up to point t
    for n in range(1, depth + 1):
        # g_t = sum_{k=1..n} S^(n-k)_t (x) D_t^(x)(k-1) / k!, so that the level-n increment
        # over step t is g_t (x) D_t (Horner scheme in D_t).
        if n == 1:
            g = None
        else:
            g = inc / n
            for j in range(1, n - 1):
                g = _outer_time_last(g.add_(prefix[j - 1]), inc / (n - j))
            g = g.add_(prefix[n - 2])  # g is a fresh temporary: update in place
        if n == depth:  # no prefix needed: sum_t g_t (x) D_t as one batched matrix product
            if g is None:
                levels.append(inc.sum(dim=-1))
            else:
                levels.append(torch.bmm(g, inc.transpose(1, 2)).reshape(batch, -1))
            break
        step = inc if g is None else _outer_time_last(g, inc)
        before = torch.nn.functional.pad(step[..., :-1].cumsum(dim=-1), (1, 0))
        levels.append(before[..., -1] + step[..., -1])
        prefix.append(before)
    return levels


def _outer_time_last(a: Tensor, b: Tensor) -> Tensor:
    """Tensor product ``[B, p, N] x [B, q, N] -> [B, p * q, N]`` (row-major), per step."""
    return (a.unsqueeze(2) * b.unsqueeze(1)).flatten(1, 2)


def _mul(a: list[Tensor | None], b: list[Tensor], depth: int) -> list[Tensor | None]:
    """Product of two truncated tensor series without scalar terms (``None``: zero level)."""
    out: list[Tensor | None] = []
    for n in range(1, depth + 1):
        total = None
        for k in range(1, n):
            if a[k - 1] is not None:
                term = _outer(a[k - 1], b[n - k - 1])
                total = term if total is None else total + term
        out.append(total)
    return out


def _tensor_log(levels: list[Tensor]) -> list[Tensor]:
    """``log(1 + x) = sum_k (-1)**(k+1) x**k / k`` truncated at ``len(levels)``."""
    depth = len(levels)
    result = list(levels)
    power: list[Tensor | None] = list(levels)
    for k in range(2, depth + 1):
        power = _mul(power, levels, depth)
        coef = (-1) ** (k + 1) / k
        result = [r if p is None else r + coef * p for r, p in zip(result, power, strict=True)]
    return result


# --- Lyndon words and the Lyndon basis -------------------------------------------------------


def _mobius(n: int) -> int:
    result, p = 1, 2
    while p * p <= n:
        if n % p == 0:
            n //= p
            if n % p == 0:
                return 0
            result = -result
        p += 1
    return -result if n > 1 else result


def _witt(channels: int, length: int) -> int:
    divisors = [k for k in range(1, length + 1) if length % k == 0]
    return sum(_mobius(k) * channels ** (length // k) for k in divisors) // length


@lru_cache(maxsize=32)
def _lyndon_words(channels: int, depth: int) -> tuple[tuple[tuple[int, ...], ...], ...]:
    """Lyndon words by length (Duval's generation, lexicographic within each length)."""
    by_length: list[list[tuple[int, ...]]] = [[] for _ in range(depth)]
    word = [-1]
    while word:
        word[-1] += 1
        by_length[len(word) - 1].append(tuple(word))
        period = len(word)
        while len(word) < depth:
            word.append(word[len(word) - period])
        while word and word[-1] == channels - 1:
            word.pop()
    return tuple(tuple(sorted(words)) for words in by_length)


@lru_cache(maxsize=64)
def _lyndon_indices(channels: int, length: int) -> Tensor:
    """Positions of the Lyndon words of ``length`` in the row-major flattened level."""
    words = _lyndon_words(channels, length)[length - 1]
    index = [sum(c * channels ** (length - 1 - i) for i, c in enumerate(w)) for w in words]
    return torch.tensor(index, dtype=torch.long)


@lru_cache(maxsize=16)
def _bracket_matrices(channels: int, depth: int) -> tuple[Tensor, ...]:
    """Per level, ``M[w, v]`` = coefficient of Lyndon word ``v`` in the bracket ``P_w``.

    ``P_w = [P_u, P_v]`` for the standard factorisation ``w = uv`` (``v`` the longest proper
    Lyndon suffix). In lexicographic order ``M`` is upper unitriangular (``P_w`` is ``w`` plus
    larger words; Reutenauer, Free Lie Algebras, Thm 5.1), so words-coordinates ``x`` and
    Lyndon-basis coordinates ``c`` satisfy ``x = c M``.
    """
    for n in range(1, depth + 1):
        count = _witt(channels, n)
        if count * channels**n > _MAX_BRACKET_ENTRIES:
            raise ValueError(
                f"the Lyndon ('brackets') basis for {channels} channels and depth {depth} "
                f"needs a {count} x {channels**n} expansion at level {n}; use basis='words'"
            )
    by_length = _lyndon_words(channels, depth)
    expansion: dict[tuple[int, ...], Tensor] = {}
    matrices = []
    for n in range(1, depth + 1):
        words = by_length[n - 1]
        rows = []
        for w in words:
            if n == 1:
                vec = torch.zeros(channels, dtype=torch.float64)
                vec[w[0]] = 1.0
            else:
                lyndon_suffix = next(i for i in range(1, n) if w[i:] in expansion)
                u, v = expansion[w[:lyndon_suffix]], expansion[w[lyndon_suffix:]]
                vec = _outer(u, v) - _outer(v, u)
            expansion[w] = vec
            rows.append(vec)
        if not rows:  # one channel: no Lyndon words longer than 1
            matrices.append(torch.zeros(0, 0, dtype=torch.float64))
            continue
        matrices.append(torch.stack(rows)[:, _lyndon_indices(channels, n)])
    return tuple(matrices)
