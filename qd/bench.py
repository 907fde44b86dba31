"""Throughput benchmarks behind ``qd bench`` (printed, never asserted in tests)."""

from __future__ import annotations

import resource
import sys
import time

import torch

import envs
from qd.evaluation import LocalEvaluator, resolve_device
from qd.policies import SereneMLP, serene_sizes


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def rollout_throughput(
    env_name: str,
    batch: int,
    *,
    steps: int | None = None,
    device: str = "cpu",
    episodes: int = 1,
    seed: int = 0,
) -> dict:
    """Policy-steps per second of full episodes of random SERENE policies.

    Warm-up (one short episode at the same batch size) is excluded from the timing.
    """
    dev = resolve_device(device)
    options = {} if steps is None else {"episode_length": int(steps)}
    env = envs.make(env_name, **options)
    policy = SereneMLP(serene_sizes(env.spec.obs_size, env.spec.action_size))
    evaluator = LocalEvaluator(env, policy, device=dev, max_batch=batch, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    genomes = torch.randn(batch, policy.genome_size, generator=gen).clamp(-5, 5).to(dev)
    warm = envs.make(env_name, **{**options, "episode_length": min(20, env.spec.episode_length)})
    LocalEvaluator(warm, policy, device=dev, max_batch=batch).evaluate(genomes)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    start = time.perf_counter()
    for _ in range(episodes):
        out = evaluator.evaluate(genomes)
    out.fitness.sum().item()  # wait for the device
    wall = time.perf_counter() - start
    length = env.spec.episode_length
    return {
        "env": env_name,
        "device": str(dev),
        "batch": batch,
        "steps": length,
        "episodes": episodes,
        "wall_s": wall,
        "policy_steps_per_s": batch * length * episodes / wall,
        "peak_memory_mb": _peak_memory_mb(dev),
        "threads": torch.get_num_threads(),
    }
