"""Batched policy evaluation: a whole population rolled out together in a batched env.

``LocalEvaluator.evaluate(genomes)`` runs one fixed-length episode per genome. The loop has no
host synchronisation (no ``.item()``, no branching on tensor values): finished episodes are
handled with done-masks, and recordings happen at step indices known in advance. Populations
larger than ``max_batch`` are processed in chunks so memory stays bounded.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch

from qd.policies import BatchedMLP


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Parse a device string, with clear errors for unknown or unavailable devices."""
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"unknown device {device!r} (use 'cpu', 'cuda' or 'cuda:N'): {err}"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise ValueError(f"device {device!r} requested but only {count} CUDA devices exist")
    elif dev.type not in ("cpu", "mps"):
        raise ValueError(f"unsupported device {device!r}; use 'cpu' or 'cuda'")
    return dev


@dataclass
class Outcomes:
    """What one batch of episodes produced (all tensors have the population as dim 0).

    Attributes:
        fitness: ``[B]`` episode return.
        reward_area: ``[B]`` long, index of the reward area the episode ended in, -1 if none.
        descriptor: ``[B, d]`` ground-truth behaviour descriptor (for metrics).
        final_obs: ``[B, obs]`` last observation.
        frames: ``[B, F, H, W, 3]`` uint8 renders (F equally spaced, the last one final), or None.
        trajectory: ``[B, S, obs]`` observations sampled at S equally spaced steps, or None.
        path: ``[B, P, d]`` ground-truth descriptors sampled at P equally spaced steps (e.g. the
            robot's path in HardMaze), or None.
    """

    fitness: torch.Tensor
    reward_area: torch.Tensor
    descriptor: torch.Tensor
    final_obs: torch.Tensor
    frames: torch.Tensor | None = None
    trajectory: torch.Tensor | None = None
    path: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.fitness.shape[0]

    def _map(self, fn) -> Outcomes:
        return Outcomes(
            **{
                f.name: (None if (v := getattr(self, f.name)) is None else fn(v))
                for f in fields(self)
            }
        )

    def to(self, device: str | torch.device) -> Outcomes:
        """Copy to ``device``."""
        return self._map(lambda t: t.to(device))

    def select(self, index: torch.Tensor | slice) -> Outcomes:
        """Rows ``index`` of every field."""
        return self._map(lambda t: t[index])

    @staticmethod
    def cat(parts: list[Outcomes]) -> Outcomes:
        """Concatenate along the population dimension."""
        first = parts[0]
        values = {}
        for f in fields(first):
            if getattr(first, f.name) is None:
                values[f.name] = None
            else:
                values[f.name] = torch.cat([getattr(p, f.name) for p in parts], 0)
        return Outcomes(**values)


def auto_max_batch(spec, genome_size: int, device: torch.device) -> int:
    """A chunk size that fits in half the free memory of ``device`` (at least 256).

    Per episode: the genome and its unflattened copy, about 64 state-sized temporaries, and the
    recordings (up to 8 frames), all in 4-byte words except uint8 frames.
    """
    frame_bytes = 8 * spec.image_size * spec.image_size * 3
    words = 2 * genome_size + 64 * (spec.obs_size + spec.action_size + 16)
    per_episode = 4 * words + frame_bytes
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
        cap = 1 << 20
    else:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            free = 2 << 30
        cap = 1 << 14  # CPU throughput saturates around a few thousand episodes
    return int(max(256, min(cap, free // 2 // per_episode)))


def reset_groups(
    spec, batch: int, seeds: Sequence[tuple[int, int]] | None, default: int
) -> list[tuple[int, int, int]]:
    """Row ranges ``(start, stop, seed)`` that share one reset.

    ``seeds`` lists ``(count, seed)`` segments covering the ``batch`` rows in order (``None``:
    every row uses ``default``). Where the env's reset ignores the seed (``spec.random_reset``
    false), every row shares one reset whatever its seed; otherwise consecutive segments with
    the same seed are merged.
    """
    if seeds is None:
        return [(0, batch, int(default))]
    counts = [int(c) for c, _ in seeds]
    if any(c < 0 for c in counts) or sum(counts) != batch:
        raise ValueError(f"seeds segments {counts} must be >= 0 and sum to the batch ({batch})")
    if not spec.random_reset:
        return [(0, batch, int(default))]
    groups: list[tuple[int, int, int]] = []
    start = 0
    for count, seed in seeds:
        if count == 0:
            continue
        if groups and groups[-1][2] == int(seed):
            groups[-1] = (groups[-1][0], start + count, int(seed))
        else:
            groups.append((start, start + count, int(seed)))
        start += count
    return groups


def sample_steps(episode_length: int, count: int) -> list[int]:
    """``count`` equally spaced step numbers in ``[1, episode_length]``, the last one final."""
    if count <= 0:
        return []
    return sorted({round(episode_length * (k + 1) / count) for k in range(count)})


class LocalEvaluator:
    """Evaluate populations in one process on one device.

    Args:
        env: a batched environment (see :mod:`envs.base`).
        policy: the policy family genomes are decoded with.
        device: ``"cpu"`` (default), ``"cuda"``, ``"cuda:1"``...
        max_batch: most episodes stepped together; larger populations are chunked. ``"auto"``
            picks it from the free memory of the device; a CUDA out-of-memory error halves the
            chunk and retries it, so a generation is never lost.
        seed: seed of the environment's reset (identical for every episode and call).
        compile: run the per-step function (observe, policy, step) through ``torch.compile``;
            falls back to eager with a warning where compilation fails. Compiled kernels may
            round differently from eager ones, so compiled outcomes are close to, not bit-equal
            with, eager outcomes.
        compile_mode: ``torch.compile`` mode (``default``; ``reduce-overhead`` adds CUDA graphs).
    """

    def __init__(
        self,
        env,
        policy: BatchedMLP,
        *,
        device: str | torch.device = "cpu",
        max_batch: int | str = 4096,
        seed: int = 0,
        compile: bool = False,
        compile_mode: str | None = None,
    ) -> None:
        if policy.obs_size != env.spec.obs_size or policy.action_size != env.spec.action_size:
            raise ValueError(
                f"policy sizes {policy.sizes} do not match env {env.spec.name!r} "
                f"(obs {env.spec.obs_size}, actions {env.spec.action_size})"
            )
        self.env = env
        self.policy = policy
        self.device = resolve_device(device)
        if max_batch == "auto":
            max_batch = auto_max_batch(env.spec, policy.genome_size, self.device)
        if not isinstance(max_batch, int) or max_batch <= 0:
            raise ValueError(f"max_batch must be a positive int or 'auto', got {max_batch!r}")
        self.max_batch = int(max_batch)
        self.compile = bool(compile)
        self.compile_mode = compile_mode
        self._compiled = None
        self.seed = int(seed)
        self.evaluations = 0

    @torch.inference_mode()
    def evaluate(
        self,
        genomes: torch.Tensor,
        *,
        frames: int = 0,
        trajectory: int = 0,
        path: int = 0,
        seeds: Sequence[tuple[int, int]] | None = None,
    ) -> Outcomes:
        """Roll out one episode per genome.

        Args:
            genomes: ``[B, genome_size]`` float tensor (any device; moved to the evaluator's).
            frames: number of equally spaced renders to keep (0 = none, 1 = final frame).
            trajectory: number of equally spaced observations to keep (0 = none).
            path: number of equally spaced ground-truth descriptors to keep (0 = none).
            seeds: ``[(count, seed), ...]`` covering the rows in order: the reset seed of each
                segment (lockstep seeds). Default: the evaluator's seed for every row. Envs whose
                reset ignores the seed (``spec.random_reset`` false) step all rows together.

        Returns:
            Outcomes on the evaluator's device.
        """
        self.policy.check(genomes)
        genomes = genomes.to(self.device, torch.float32)
        parts = []
        for lo, hi, seed in reset_groups(self.env.spec, genomes.shape[0], seeds, self.seed):
            start = lo
            while start < hi:
                chunk = genomes[start : min(hi, start + self.max_batch)]
                try:
                    parts.append(self._rollout(chunk, frames, trajectory, path, seed))
                except torch.OutOfMemoryError:
                    if self.max_batch == 1:
                        raise
                    self.max_batch = max(1, self.max_batch // 2)
                    if self.device.type == "cuda":
                        torch.cuda.empty_cache()
                    warnings.warn(
                        f"out of memory: max_batch halved to {self.max_batch}", stacklevel=2
                    )
                    continue
                start += chunk.shape[0]
        self.evaluations += genomes.shape[0]
        return parts[0] if len(parts) == 1 else Outcomes.cat(parts)

    def close(self) -> None:
        """Nothing to release (same interface as :class:`RayEvaluator`)."""

    def _eager_step(self, layers, state):
        obs = self.env.observe(state)
        return self.env.step(state, self.policy.forward(layers, obs))

    def _step_function(self):
        """The per-step function: eager, or compiled once and reused (``compile=True``).

        With ``compile_mode="reduce-overhead"`` the step is replayed as a CUDA graph; each call
        is marked as a new step, since its input is the previous call's output. (Measured on an
        H200 it did not beat eager, while the default inductor fusion gave 1.8x at B = 65536.)
        """
        if not self.compile:
            return self._eager_step
        if self._compiled is None:
            mode = self.compile_mode or "default"
            compiled = torch.compile(self._eager_step, mode=mode)
            if mode == "reduce-overhead":

                def step(layers, state):
                    torch.compiler.cudagraph_mark_step_begin()
                    return compiled(layers, state)

                self._compiled = step
            else:
                self._compiled = compiled
        return self._compiled

    def _rollout(self, genomes, n_frames: int, n_traj: int, n_path: int, seed: int) -> Outcomes:
        if not self.compile or self._compiled is self._eager_step:
            return self._run_episode(genomes, n_frames, n_traj, n_path, seed, self._eager_step)
        try:
            return self._run_episode(genomes, n_frames, n_traj, n_path, seed, self._step_function())
        except torch.OutOfMemoryError:
            raise
        except Exception as err:  # no compiler, unsupported op...: rerun this chunk eagerly
            warnings.warn(
                f"torch.compile failed ({type(err).__name__}: {str(err)[:200]}); running eagerly",
                stacklevel=3,
            )
            self._compiled = self._eager_step
            return self._run_episode(genomes, n_frames, n_traj, n_path, seed, self._eager_step)

    def _run_episode(self, genomes, n_frames, n_traj, n_path, seed, advance) -> Outcomes:
        env, spec = self.env, self.env.spec
        batch = genomes.shape[0]
        layers = self.policy.unflatten(genomes)
        generator = torch.Generator(device=self.device).manual_seed(int(seed))
        if n_frames and hasattr(env, "prepare_render"):  # envs that render only when asked
            env.prepare_render()
        state = env.reset(batch, device=self.device, generator=generator)
        frame_steps = set(sample_steps(spec.episode_length, n_frames))
        traj_steps = set(sample_steps(spec.episode_length, n_traj))
        path_steps = set(sample_steps(spec.episode_length, n_path))
        frames, traj, path = [], [], []
        fitness = torch.zeros(batch, device=self.device)
        alive = torch.ones(batch, dtype=torch.bool, device=self.device)
        for t in range(1, spec.episode_length + 1):
            state = advance(layers, state)
            if not spec.final_reward_only:
                fitness += torch.where(alive, env.reward(state), torch.zeros_like(fitness))
            if spec.can_terminate:
                alive = alive & ~env.done(state)
            if t in traj_steps:
                traj.append(env.observe(state))
            if t in frame_steps:
                frames.append(env.render(state))
            if t in path_steps:
                path.append(env.descriptor(state))
        if spec.final_reward_only:
            fitness = env.reward(state)
        return Outcomes(
            fitness=fitness,
            reward_area=env.reward_area(state),
            descriptor=env.descriptor(state),
            final_obs=env.observe(state),
            frames=torch.stack(frames, 1) if frames else None,
            trajectory=torch.stack(traj, 1) if traj else None,
            path=torch.stack(path, 1) if path else None,
        )


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
        self.evaluator = LocalEvaluator(env, policy, device=device, max_batch=max_batch, seed=seed)

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
