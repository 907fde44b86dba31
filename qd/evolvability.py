"""Evolvability of a genome (Doncieux et al., GECCO 2020), generalised to any environment.

Evaluate ``mutants`` (1,000) mutants of the genome, bin their ground-truth descriptors on the
environment's grid; coverage = filled cells / all cells, uniformity = 1 - Jensen-Shannon
distance (base 2) between the histogram over filled cells and uniform (see
:mod:`qd.metrics`). Mutation: the run's Gaussian operator (``clip(g + N(0, sigma), low, high)``).
"""

from __future__ import annotations

import math

import torch

from qd.evaluation import LocalEvaluator
from qd.metrics import grid_cells, uniformity
from qd.policies import BatchedMLP, SereneMLP, serene_sizes


def evolvability(
    genomes: torch.Tensor,
    env,
    *,
    mutants: int = 1000,
    sigma: float = 0.05,
    low: float = -5.0,
    high: float = 5.0,
    seed: int = 0,
    device: str = "cpu",
    hidden: list[int] | None = None,
    policy: BatchedMLP | None = None,
) -> list[dict]:
    """Coverage and uniformity of the mutants' descriptors, one dict per genome ``[N, D]``."""
    if policy is None:  # the SERENE-family policy of the run (``qd.algorithms.policy_for``)
        sizes = serene_sizes(env.spec.obs_size, env.spec.action_size, hidden, env=env.spec.name)
        policy = SereneMLP(sizes)
    evaluator = LocalEvaluator(env, policy, device=device, seed=seed)
    spec = env.spec.to_dict()
    n_cells = math.prod(spec["grid_shape"])
    gen = torch.Generator().manual_seed(seed)
    results = []
    for genome in genomes.cpu().float():
        noise = torch.randn(mutants, genome.numel(), generator=gen) * sigma
        batch = (genome[None] + noise).clamp_(low, high)
        out = evaluator.evaluate(batch)
        counts = torch.bincount(grid_cells(out.descriptor, spec), minlength=n_cells)
        results.append(
            {
                "coverage": float((counts > 0).sum() / n_cells),
                "uniformity": uniformity(counts),
                "filled_cells": int((counts > 0).sum()),
                "mutants": mutants,
            }
        )
    return results
