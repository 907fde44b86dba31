"""Evaluation on Ray actors (local processes or an existing cluster)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields

import torch

from qd.evaluation import LocalEvaluator, Outcomes, reset_groups
from qd.policies import BatchedMLP


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ImportError(
            "the Ray evaluator needs the optional dependency ray: pip install 'qdtorch[ray]'"
        ) from None
    return ray


class _Worker:
    """One Ray actor: its own environment, policy family and device."""

    def __init__(
        self, env_name, env_options, policy_spec, device, max_batch, seed, threads, imports=()
    ):
        import envs
        from qd.policies import make_policy

        envs.plugins.import_modules(imports)

        if threads:
            torch.set_num_threads(threads)
        spec = dict(policy_spec)
        policy = make_policy(spec.pop("kind"), spec.pop("sizes"), **spec)
        env = envs.make(env_name, **env_options)
        self.evaluator = LocalEvaluator(
            env, policy, device=device, max_batch=max_batch, seed=seed, rollout_threads=None
        )

    def evaluate(self, genomes, recordings: dict, seed: int) -> dict:
        genomes = torch.as_tensor(genomes)
        out = self.evaluator.evaluate(genomes, seeds=[(len(genomes), seed)], **recordings)
        return {
            f.name: None if (v := getattr(out, f.name)) is None else v.cpu() for f in fields(out)
        }

    def pid(self) -> int:
        import os

        return os.getpid()


class RayEvaluator:
    """Evaluate populations on Ray actors (local processes or an existing cluster).

    Each population is split into ``workers`` contiguous shards, one per actor; every actor owns
    its environment and device. Outcomes are identical to :class:`LocalEvaluator` with the same
    seed (evaluation is batch-invariant). An actor that dies is replaced and its shard re-run.

    Args:
        env_name: registry name (actors build their own env with ``env_options``).
        imports: modules each actor imports first (modules that register environments).
        policy: the policy family (sent to the actors as ``policy.to_dict()``).
        workers: number of actors.
        address: Ray cluster address (``None``: reuse or start a local Ray instance).
        device: device of each actor (``cpu`` or ``cuda``; a GPU actor asks Ray for one GPU).
        max_batch, seed: as for :class:`LocalEvaluator`.
        threads: torch CPU threads per actor (default 1).
        retries: times a shard is re-run on a fresh actor before giving up.
        start_timeout: seconds to wait for the actors to start (e.g. too few free CPUs).
    """

    def __init__(
        self,
        env_name: str,
        policy: BatchedMLP,
        *,
        env_options: dict | None = None,
        imports: Sequence[str] = (),
        workers: int = 2,
        address: str | None = None,
        device: str = "cpu",
        max_batch: int = 4096,
        seed: int = 0,
        threads: int = 1,
        retries: int = 3,
        start_timeout: float = 300.0,
    ) -> None:
        if workers <= 0:
            raise ValueError(f"workers must be > 0, got {workers}")
        ray = _import_ray()
        if not ray.is_initialized():
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                ignore_reinit_error=True,
            )
        import envs

        envs.plugins.import_modules(imports)
        self.env = envs.make(env_name, **(env_options or {}))  # validates name and options
        self.policy = policy
        self.device = torch.device("cpu")
        self.seed = int(seed)
        self.evaluations = 0
        self.retries = retries
        gpus = 1 if str(device).startswith("cuda") else 0
        self._actor_cls = ray.remote(num_cpus=threads, num_gpus=gpus)(_Worker)
        self._args = (
            env_name,
            dict(env_options or {}),
            policy.to_dict(),
            str(device),
            max_batch,
            seed,
            threads,
            tuple(imports),
        )
        self.actors = [self._new_actor() for _ in range(workers)]
        try:
            ray.get([a.pid.remote() for a in self.actors], timeout=start_timeout)
        except ray.exceptions.GetTimeoutError:
            self.close()
            raise RuntimeError(
                f"could not start {workers} Ray actors ({threads} CPU, {gpus} GPU each) within "
                f"{start_timeout:.0f} s; the cluster has {ray.cluster_resources()}"
            ) from None

    def _new_actor(self):
        return self._actor_cls.remote(*self._args)

    def evaluate(
        self,
        genomes: torch.Tensor,
        *,
        frames: int = 0,
        trajectory: int = 0,
        path: int = 0,
        seeds: Sequence[tuple[int, int]] | None = None,
    ) -> Outcomes:
        """Same contract as :meth:`LocalEvaluator.evaluate` (outcomes on the CPU)."""
        self.policy.check(genomes)
        genomes = genomes.detach().cpu().float()
        recordings = {"frames": frames, "trajectory": trajectory, "path": path}
        parts = [
            self._evaluate_group(genomes[lo:hi], recordings, seed)
            for lo, hi, seed in reset_groups(self.env.spec, len(genomes), seeds, self.seed)
        ]
        self.evaluations += len(genomes)
        return parts[0] if len(parts) == 1 else Outcomes.cat(parts)

    def _evaluate_group(self, genomes: torch.Tensor, recordings: dict, seed: int) -> Outcomes:
        """Rows sharing one reset seed, split into one shard per actor."""
        ray = _import_ray()
        shards = [s for s in torch.tensor_split(genomes, len(self.actors)) if len(s)]
        pending = {
            i: self.actors[i].evaluate.remote(s, recordings, seed) for i, s in enumerate(shards)
        }
        results: dict[int, dict] = {}
        failures = {i: 0 for i in pending}
        while pending:
            for i, ref in list(pending.items()):
                try:
                    results[i] = ray.get(ref)
                except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError):
                    failures[i] += 1
                    if failures[i] > self.retries:
                        raise RuntimeError(f"shard {i} failed on {failures[i]} actors") from None
                    self.actors[i] = self._new_actor()
                    pending[i] = self.actors[i].evaluate.remote(shards[i], recordings, seed)
                    continue
                del pending[i]
        parts = [Outcomes(**results[i]) for i in range(len(shards))]
        return parts[0] if len(parts) == 1 else Outcomes.cat(parts)

    def close(self) -> None:
        """Stop the actors."""
        ray = _import_ray()
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
