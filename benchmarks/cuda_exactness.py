"""Compiled rollouts vs the eager loop on CUDA: how many episodes end bit for bit equal.

On the CPU the exact compiled blocks (``LocalEvaluator(compile=True)``) equal the eager loop bit
for bit (tested). On CUDA, Triton may contract multiply-adds into FMAs and choose other
reduction orders, so this script measures it instead of assuming it: for each env, random
genomes, full-length episodes, it reports the share of episodes whose descriptor, reward area
and fitness are bit-equal, and the largest descriptor difference, for the exact and the fused
compile, and for eager CUDA against eager CPU. Prints one JSON line per env.

Run on a GPU machine from the repo root::

    python benchmarks/cuda_exactness.py --envs hardmaze curling redundant-arm --batch 512
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import envs
from qd.evaluation import LocalEvaluator
from qd.policies import SereneMLP, serene_sizes


def _agreement(got, want) -> dict:
    """Share of rows equal bit for bit, and the largest descriptor difference."""
    same = torch.ones(want.descriptor.shape[0], dtype=torch.bool)
    for name in ("descriptor", "fitness", "reward_area"):
        a, b = getattr(got, name).cpu(), getattr(want, name).cpu()
        same &= (a == b).reshape(a.shape[0], -1).all(1)
    gap = (got.descriptor.cpu() - want.descriptor.cpu()).abs().max().item()
    return {"bit_equal_share": round(same.float().mean().item(), 4), "max_descriptor_gap": gap}


def check(name: str, batch: int, device: str) -> dict:
    """Eager CPU, eager CUDA, exact and fused compiled CUDA outcomes for one env."""
    env = envs.make(name)
    spec = env.spec
    policy = SereneMLP(serene_sizes(spec.obs_size, spec.action_size, env=name))
    genomes = torch.randn(batch, policy.genome_size, generator=torch.Generator().manual_seed(0))
    result: dict = {"env": name, "batch": batch, "device": device}
    cpu = LocalEvaluator(env, policy).evaluate(genomes)
    eager = LocalEvaluator(env, policy, device=device).evaluate(genomes)
    again = LocalEvaluator(env, policy, device=device).evaluate(genomes)
    result["eager_cuda_repeat"] = _agreement(again, eager)
    result["eager_cuda_vs_cpu"] = _agreement(eager, cpu)
    for label, exact in (("exact", True), ("fused", False)):
        start = time.perf_counter()
        evaluator = LocalEvaluator(env, policy, device=device, compile=True, compile_exact=exact)
        out = evaluator.evaluate(genomes)
        result[f"{label}_vs_eager_cuda"] = {
            **_agreement(out, eager),
            "compiled": evaluator._blocks is not None,
            "first_call_s": round(time.perf_counter() - start, 1),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["hardmaze", "curling", "redundant-arm"])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    for name in args.envs:
        print(json.dumps(check(name, args.batch, args.device)), flush=True)


if __name__ == "__main__":
    main()
