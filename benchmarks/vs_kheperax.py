"""Rollout throughput against Kheperax (the JAX maze of the QDax ecosystem), single-threaded,
alternating the two in one process (run by hand; Kheperax and jax are a benchmark-only extra:
``pip install 'qdtorch[kheperax]'``, i.e. kheperax==0.2.0 jax==0.5.3 jaxlib==0.5.3).

python benchmarks/vs_kheperax.py [--batch 12 200 1000 4096] [--steps 1000] [--repeats 3]
[--compile-steps 8]

Kheperax: its default task (standard maze, 1,000-step episodes, a 66-parameter MLP), the whole
episode compiled by XLA (``lax.scan``); the first call per batch size compiles (reported).
The process is pinned to one core. Ours: HardMaze (63-gene SERENE MLP) with the same episode
length, eager, compiled (bit-identical to eager) and fused (``--compile-fused``). Best of
``--repeats`` timed calls, modes alternating.
"""

from __future__ import annotations

import os

# single-threaded: the whole process on one core (XLA's CPU runtime runs tasks on a thread
# pool of its own whatever its flags), one thread for Eigen and torch, set before either starts
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402


def kheperax_runner(batch: int, steps: int):
    """A function evaluating ``batch`` random Kheperax policies once (compiled on first use)."""
    import jax
    import jax.numpy as jnp
    from kheperax.tasks.config import KheperaxConfig
    from kheperax.tasks.main import KheperaxTask

    config = KheperaxConfig.get_default()
    config.episode_length = steps
    key = jax.random.key(0)
    env, policy, scoring_fn = KheperaxTask.create_default_task(config, random_key=key)
    keys = jax.random.split(jax.random.key(1), batch)
    params = jax.vmap(policy.init)(keys, jnp.zeros((batch, env.observation_size)))
    size = sum(x.size for x in jax.tree_util.tree_leaves(params)) // batch
    scoring = jax.jit(scoring_fn)

    def run():
        out = scoring(params, key)
        jax.block_until_ready(out[0])

    return run, size


def torch_runner(batch: int, steps: int, mode: str, compile_steps: int = 8):
    """A function evaluating ``batch`` random HardMaze policies once with our evaluator."""
    import torch

    import envs
    from qd.evaluation import LocalEvaluator
    from qd.policies import SereneMLP, serene_sizes

    torch.set_num_threads(1)
    env = envs.make("hardmaze", episode_length=steps)
    policy = SereneMLP(serene_sizes(5, 2, env="hardmaze"))
    genomes = torch.randn(batch, policy.genome_size, generator=torch.Generator().manual_seed(0))
    evaluator = LocalEvaluator(
        env,
        policy,
        max_batch=max(batch, 1),
        compile=mode != "eager",
        compile_exact=mode == "compiled",
        compile_steps=compile_steps,
    )
    return (lambda: evaluator.evaluate(genomes)), policy.genome_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[12, 200, 1000, 4096])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=["eager", "compiled", "fused"])
    parser.add_argument("--compile-steps", type=int, default=8, help="steps per compiled call")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for batch in args.batch:
        runners, params, warm = {}, {}, {}
        for name in ["kheperax", *args.modes]:
            start = time.perf_counter()
            if name == "kheperax":
                runners[name], params[name] = kheperax_runner(batch, args.steps)
            else:
                runners[name], params[name] = torch_runner(
                    batch, args.steps, name, args.compile_steps
                )
            runners[name]()  # compile / warm up
            warm[name] = time.perf_counter() - start
        best = {name: float("inf") for name in runners}
        for _ in range(args.repeats):
            for name, run in runners.items():  # alternate
                start = time.perf_counter()
                run()
                best[name] = min(best[name], time.perf_counter() - start)
        for name in runners:
            rate = batch * args.steps / best[name]
            rows.append(
                {
                    "batch": batch,
                    "system": name,
                    "parameters": params[name],
                    "policy_steps_per_s": rate,
                    "ratio_vs_kheperax": rate * best["kheperax"] / (batch * args.steps),
                    "warmup_s": warm[name],
                }
            )
            if not args.json:
                print(
                    f"B={batch:>5} {name:>9}: {rate / 1e3:9.1f} k policy-steps/s  "
                    f"x{rows[-1]['ratio_vs_kheperax']:.2f} vs Kheperax  "
                    f"(warm-up {warm[name]:.1f} s)",
                    flush=True,
                )
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
