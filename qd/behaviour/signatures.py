"""Trajectory-signature behaviour descriptors (Paolo's thesis, arXiv 2203.01027).

The descriptor of an individual is the truncated path signature (or log-signature) of its
trajectory (the env's positions or its observations, as the space's ``source`` says; see
:mod:`qd.behaviour`), seen as the piecewise-linear path through the recorded points,
optionally with a normalised time channel ``t / (T - 1)`` in ``[0, 1]`` appended as the last
channel before the transform.

Conventions (identical to iisignature, esig's signature without the leading 1, and pysiglib):

* A signature of depth ``m`` over ``d`` channels is levels ``1..m`` concatenated (the constant
  level 0, always 1, is left out): ``signature_size(d, m) = sum_{i=1..m} d**i`` terms. Level
  ``n`` holds the iterated integrals ``S^{i_1...i_n}`` in row-major order over the index word
  (``i_1`` slowest, ``i_n`` fastest), e.g. for ``d = 2``: ``1, 2, 11, 12, 21, 22, 111, ...``.
* A log-signature is the logarithm of the signature in the truncated tensor algebra, a Lie
  series, given by non-redundant coordinates over Lyndon words (levels in order, words in
  lexicographic order within a level); ``logsignature_size(d, m) = sum_{n=1..m} (1/n)
  sum_{k | n} mobius(k) d**(n/k)`` (Witt's formula) terms, in one of two bases:

  - ``"words"`` (default): the coefficients of the tensor logarithm at the Lyndon words. The
    coefficients at the Lyndon words determine a Lie series, so these are coordinates; they
    are the cheapest (a selection from the tensor logarithm) and work for any ``d`` and ``m``.
    Same as pysiglib ``log_sig(method=1)`` and signatory ``logsignature(mode="words")``.
  - ``"brackets"``: coordinates in the Lyndon basis (standard bracketing of each Lyndon word,
    e.g. ``[1,[1,2]]``), as iisignature's ``logsig`` with its default basis and pysiglib
    ``log_sig(method=2)``. Obtained from the ``"words"`` coordinates by a unitriangular solve
    per level; the ``L_n x L_n`` matrices are dense, so this is limited to moderate sizes.

  The two bases agree up to depth 2 (the level-2 Lyndon basis is ``[i, j] = ij - ji``).

Why a torch implementation instead of a signature library:

* the descriptor is computed for a whole population at once, on the device where the
  rollouts ran (CPU by default, CUDA when the data is there): plain torch ops run on both with
  no extra binary, no CUDA plugin wheel to match to the torch build, no copy to numpy, and
  they are differentiable; the module is a few hundred lines of tensor algebra tested against a
  reference, versus a runtime dependency on a compiled package;
* candidates checked on Python 3.11 with torch 2.13 CPU: pysiglib 4.0.0 (maintained, C++ CPU
  kernels, hard-depends on torch and kauri; CUDA needs the separate ``pysiglib-cuda`` wheel)
  installs from a wheel and agrees with iisignature to 1e-15; iisignature 0.24 (last release
  2020) has no wheel and its source build needs numpy pre-installed
  (``--no-build-isolation``), so ``pip install iisignature`` fails in a fresh environment;
  roughpy 0.3.0 installs and runs but works on numpy streams one at a time, not batched torch
  tensors; esig 1.0.0 wraps roughpy and its ``pyrecombine`` dependency fails to import without
  MKL; signatory 1.2.6.1.9.0 (last release 2021, built for torch 1.9) is source-only, a torch
  C++ extension that builds against torch 2.13 only with ``--no-build-isolation`` and takes
  over 10 minutes to compile here (it then agrees with this module);
* speed is adequate for once-per-generation descriptors. B=1000 paths, T=2000 steps, d=2, one
  CPU thread (2-core shared machine, best of 3): depth 2 0.02 s (float32) / 0.03 s (float64),
  depth 5 0.15-0.18 s / 0.22-0.26 s, depth 5 with the time channel 0.6-0.7 s / 0.85 s;
  pysiglib (one thread) is 3-6x faster there (depth 5: 0.03 s / 0.05-0.07 s), signatory took
  0.36 s at depth 5 (float32). On an H200, float32 depth 5 with the time channel takes 8 ms.

Values are tested against pysiglib (a test-only reference) for depths 2 and 5, with and
without the time channel, signatures and both log-signature bases, and against a naive
sequential Chen product.

The tensor algebra (Chen's recursion, the tensor logarithm, Lyndon words and the Lyndon basis)
is in :mod:`qd.behaviour.signature_algebra`; this module checks inputs and assembles the
descriptors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from qd.behaviour.signature_algebra import (
    _bracket_matrices,
    _lyndon_indices,
    _lyndon_words,
    _signature_levels,
    _tensor_log,
    _witt,
)

__all__ = [
    "LOG_BASES",
    "SignatureSpace",
    "logsignature",
    "logsignature_size",
    "lyndon_words",
    "signature",
    "signature_size",
]

LOG_BASES = ("words", "brackets")


def signature_size(channels: int, depth: int) -> int:
    """Number of terms of a depth-``depth`` signature over ``channels`` channels.

    Args:
        channels: Number of path channels ``d`` (including the time channel if used).
        depth: Truncation depth ``m >= 1``.

    Returns:
        ``sum_{i=1..m} d**i``.
    """
    _check_positive_int(channels, "channels")
    _check_positive_int(depth, "depth")
    return sum(channels**i for i in range(1, depth + 1))


def logsignature_size(channels: int, depth: int) -> int:
    """Number of terms of a depth-``depth`` log-signature over ``channels`` channels.

    Args:
        channels: Number of path channels ``d`` (including the time channel if used).
        depth: Truncation depth ``m >= 1``.

    Returns:
        The number of Lyndon words of length ``1..m`` over ``d`` letters (Witt's formula
        ``sum_{n=1..m} (1/n) sum_{k | n} mobius(k) d**(n/k)``).
    """
    _check_positive_int(channels, "channels")
    _check_positive_int(depth, "depth")
    return sum(_witt(channels, n) for n in range(1, depth + 1))


def signature(paths: Tensor, *, depth: int, time_channel: bool = False) -> Tensor:
    """Truncated signatures of a batch of piecewise-linear paths.

    Args:
        paths: ``[B, T, d]`` points of ``B`` paths of ``T >= 1`` steps in ``d`` channels, on any
            device; floating dtypes are kept, integer ones become the default float dtype.
        depth: Truncation depth ``m >= 1`` (Paolo uses 2 by default, 5 in some experiments).
        time_channel: Append ``t / (T - 1)`` (0 for ``T = 1``) as the last channel first.

    Returns:
        ``[B, signature_size(d', depth)]`` with ``d' = d + time_channel``: levels ``1..m``
        concatenated, each row-major over index words (see the module docstring), on the
        device and in the dtype of ``paths``. A constant path has a zero signature.

    Raises:
        TypeError: ``paths`` is not a real tensor.
        ValueError: ``paths`` is not 3-D, has no steps or channels, or contains NaN or
            infinite values; ``depth`` is not an integer >= 1.
    """
    _check_positive_int(depth, "depth")
    increments = _increments(paths, time_channel)
    return torch.cat(_signature_levels(increments, depth), dim=-1)


def logsignature(
    paths: Tensor, *, depth: int, time_channel: bool = False, basis: str = "words"
) -> Tensor:
    """Truncated log-signatures of a batch of piecewise-linear paths.

    Args:
        paths: ``[B, T, d]`` points, as for :func:`signature`.
        depth: Truncation depth ``m >= 1``.
        time_channel: Append ``t / (T - 1)`` as the last channel first.
        basis: ``"words"`` (coefficients of the tensor logarithm at the Lyndon words) or
            ``"brackets"`` (Lyndon basis, as iisignature's ``logsig``); see the module
            docstring. Both give ``logsignature_size(d', depth)`` terms, ordered by level then
            lexicographically by Lyndon word (:func:`lyndon_words` lists them).

    Returns:
        ``[B, logsignature_size(d', depth)]`` on the device and in the dtype of ``paths``.

    Raises:
        TypeError: ``paths`` is not a real tensor.
        ValueError: as for :func:`signature`; an unknown ``basis``; ``"brackets"`` for a
            channel count and depth whose Lyndon-basis matrix would be too large.
    """
    _check_positive_int(depth, "depth")
    if basis not in LOG_BASES:
        raise ValueError(f"unknown log-signature basis {basis!r}; use one of {LOG_BASES}")
    increments = _increments(paths, time_channel)
    channels = increments.shape[-1]
    # Built (and size-checked) before the heavy work.
    matrices = _bracket_matrices(channels, depth) if basis == "brackets" else ()
    levels = _tensor_log(_signature_levels(increments, depth))
    out = []
    for n, level in enumerate(levels, start=1):
        coords = level[:, _lyndon_indices(channels, n).to(level.device)]
        if basis == "brackets" and n > 2 and coords.shape[-1] > 0:
            matrix = matrices[n - 1].to(device=coords.device, dtype=coords.dtype)
            coords = torch.linalg.solve_triangular(
                matrix, coords, upper=True, left=False, unitriangular=True
            )
        out.append(coords)
    return torch.cat(out, dim=-1)


def lyndon_words(channels: int, depth: int) -> list[tuple[int, ...]]:
    """The Lyndon words (0-based letters) that index log-signature coordinates, in order.

    Args:
        channels: Alphabet size ``d``.
        depth: Longest word length ``m``.

    Returns:
        Words of length 1, then 2, ... ``m``, each length in lexicographic order.
    """
    _check_positive_int(channels, "channels")
    _check_positive_int(depth, "depth")
    return [w for n in range(1, depth + 1) for w in _lyndon_words(channels, depth)[n - 1]]


@dataclass(frozen=True)
class SignatureSpace:
    """Behaviour space of trajectory signatures (or log-signatures).

    Attributes:
        depth: Truncation depth (2 by default, as in Paolo's thesis; 5 also used there).
        log: Use the log-signature (fewer, non-redundant terms) instead of the signature.
        time_channel: Append the normalised time ``t / (T - 1)`` before the transform.
        log_basis: Log-signature basis, ``"words"`` or ``"brackets"`` (see the module doc).
    """

    depth: int = 2
    log: bool = False
    time_channel: bool = False
    log_basis: str = "words"

    def __post_init__(self) -> None:
        _check_positive_int(self.depth, "depth")
        if self.log_basis not in LOG_BASES:
            raise ValueError(
                f"unknown log-signature basis {self.log_basis!r}; use one of {LOG_BASES}"
            )

    def dim(self, channels: int) -> int:
        """Descriptor size for trajectories of ``channels`` channels (before the time channel)."""
        _check_positive_int(channels, "channels")
        size = logsignature_size if self.log else signature_size
        return size(channels + int(self.time_channel), self.depth)

    def describe(self, paths: Tensor) -> Tensor:
        """Descriptors ``[B, dim(d)]`` of trajectories ``[B, T, d]`` (same device and dtype)."""
        if self.log:
            return logsignature(
                paths, depth=self.depth, time_channel=self.time_channel, basis=self.log_basis
            )
        return signature(paths, depth=self.depth, time_channel=self.time_channel)


# --- input handling ------------------------------------------------------------------------


def _check_positive_int(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")


def _increments(paths: Tensor, time_channel: bool) -> Tensor:
    """Validated ``[B, T - 1, d']`` increments of the (time-augmented) paths."""
    if not isinstance(paths, Tensor):
        raise TypeError(f"paths must be a torch.Tensor [batch, length, channels]; got {paths!r}")
    if paths.dim() != 3:
        raise ValueError(
            f"paths must be a 3-D tensor [batch, length, channels]; got shape {tuple(paths.shape)}"
        )
    if paths.shape[1] < 1 or paths.shape[2] < 1:
        raise ValueError(
            f"paths need at least one step and one channel; got shape {tuple(paths.shape)}"
        )
    if paths.is_complex():
        raise TypeError(f"paths must be real; got dtype {paths.dtype}")
    if not paths.is_floating_point():
        paths = paths.to(torch.get_default_dtype())
    bad = ~torch.isfinite(paths)
    if bool(bad.any()):
        what = "NaN" if bool(torch.isnan(paths).any()) else "infinite values"
        b, t, c = (int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"paths contain {what} (first non-finite value at batch {b}, step {t}, "
            f"channel {c}); signatures need finite trajectories"
        )
    increments = paths.diff(dim=1)
    if time_channel:
        steps = paths.shape[1]
        dt = 1.0 / (steps - 1) if steps > 1 else 0.0
        time = increments.new_full((*increments.shape[:2], 1), dt)
        increments = torch.cat([increments, time], dim=-1)
    return increments
