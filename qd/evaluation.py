"""Batched policy evaluation: a whole population rolled out together in a batched env.

``LocalEvaluator.evaluate(genomes)`` runs one fixed-length episode per genome (the episode loop
is :mod:`qd.rollout`). Populations larger than ``max_batch`` are processed in chunks so memory
stays bounded. :class:`RayEvaluator` (in :mod:`qd.evaluation_ray`) spreads them over Ray actors.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields

import torch

from qd.policies import BatchedMLP
from qd.rollout import CompiledBlocks, eager_advance, run_episode, sample_steps  # noqa: F401 (re-export)

# fewest episodes per rollout worker: below, one thread steps the chunk
WORKER_ROWS = 256


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
        compile: run the episode in ``torch.compile``'d blocks of ``compile_steps`` steps
            (observe, policy, step, reward, done-mask; one compile for every batch size); falls
            back to eager with a warning where compilation fails. The first call compiles
            (tens of seconds on a CPU; inductor caches the code on disk for later processes).
        compile_exact: keep transcendental functions on the eager kernels, so compiled
            outcomes are bit-identical to eager ones (see :mod:`qd.compiled`); ``False`` fuses
            them too: faster, deterministic, but rounding differs from eager.
        compile_steps: steps per compiled call.
        compile_mode: ``torch.compile`` mode (``default``; ``reduce-overhead`` adds CUDA graphs).
        compile_cpp_wrapper: call the compiled kernels from generated C++ rather than Python
            (``None``: on the CPU). Same kernels and numbers, a smaller fixed cost per call:
            x1.5-1.7 at 12 episodes, x1.1-1.3 at 200-1,000 (HardMaze, Curling). Where it fails
            to build, the Python wrapper takes over, then eager.
        rollout_threads: torch CPU threads while rolling out (restored afterwards); ``None``
            keeps the process's setting. Default 1: on a 2-core CPU a second thread never paid
            for rollouts (x1.07 at B = 4096) and cost x4 at B = 200, since each small op wakes
            it (``benchmarks/threads_under_load.py``); the rest of the search (autoencoder,
            novelty) keeps every thread.
        rollout_workers: on the CPU, split a chunk of at least ``2 * WORKER_ROWS`` episodes
            into this many parts stepped at once by as many Python threads (each part on
            ``rollout_threads`` threads; the compiled kernels and ATen release the GIL). The
            outcomes are the same (every env is batch invariant); on the 2-core machine two
            workers gave x1.9-2.0 at 4,096 episodes and x1.5-1.6 at 1,000.
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
        compile_exact: bool = True,
        compile_steps: int = 8,
        compile_mode: str | None = None,
        compile_cpp_wrapper: bool | None = None,
        rollout_threads: int | None = 1,
        rollout_workers: int = 1,
    ) -> None:
        if rollout_threads is not None and rollout_threads <= 0:
            raise ValueError(f"rollout_threads must be > 0 or None, got {rollout_threads}")
        if not isinstance(rollout_workers, int) or rollout_workers <= 0:
            raise ValueError(f"rollout_workers must be an int > 0, got {rollout_workers!r}")
        self.rollout_threads = rollout_threads
        self.rollout_workers = rollout_workers
        self._executor: ThreadPoolExecutor | None = None
        self._warm = False  # a first (compiling) call runs in one thread
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
        if compile_cpp_wrapper is None:
            compile_cpp_wrapper = self.device.type == "cpu"
        self._blocks = (
            CompiledBlocks(
                env,
                policy,
                steps=compile_steps,
                exact=compile_exact,
                mode=compile_mode,
                cpp_wrapper=compile_cpp_wrapper,
            )
            if compile
            else None
        )
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
        """Stop the rollout workers' threads, if any (same interface as :class:`RayEvaluator`)."""
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None

    def _rollout(self, genomes, n_frames: int, n_traj: int, n_path: int, seed: int) -> Outcomes:
        threads = torch.get_num_threads()
        if self.device.type != "cpu" or self.rollout_threads in (None, threads):
            return self._rollout_parts(genomes, n_frames, n_traj, n_path, seed)
        torch.set_num_threads(self.rollout_threads)
        try:
            return self._rollout_parts(genomes, n_frames, n_traj, n_path, seed)
        finally:
            torch.set_num_threads(threads)

    def _rollout_parts(
        self, genomes, n_frames: int, n_traj: int, n_path: int, seed: int
    ) -> Outcomes:
        """One chunk, split among the rollout workers where it is large enough."""
        parts = min(self.rollout_workers, genomes.shape[0] // WORKER_ROWS)
        if self.device.type != "cpu" or parts <= 1 or not self._warm:
            outcomes = self._rollout_chunk(genomes, n_frames, n_traj, n_path, seed)
            self._warm = True
            return outcomes
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.rollout_workers, "qd-rollout")
        threads = torch.get_num_threads()

        def work(part: torch.Tensor) -> Outcomes:
            torch.set_num_threads(threads)  # this worker thread's own setting
            with torch.inference_mode():
                return self._rollout_chunk(part, n_frames, n_traj, n_path, seed)

        return Outcomes.cat(list(self._executor.map(work, torch.tensor_split(genomes, parts))))

    def _rollout_chunk(
        self, genomes, n_frames: int, n_traj: int, n_path: int, seed: int
    ) -> Outcomes:
        record = {"n_frames": n_frames, "n_traj": n_traj, "n_path": n_path}
        while self._blocks is not None:
            try:
                return Outcomes(
                    **run_episode(
                        self.env,
                        self.policy,
                        genomes,
                        seed=seed,
                        advance=self._blocks.advance,
                        **record,
                    )
                )
            except torch.OutOfMemoryError:
                raise
            except Exception as err:  # no compiler, unsupported op...: fall back one level
                blocks = self._blocks
                fallback = "the Python wrapper" if blocks.cpp_wrapper else "eager"
                warnings.warn(
                    f"torch.compile failed ({type(err).__name__}: {str(err)[:200]}); "
                    f"running with {fallback}",
                    stacklevel=3,
                )
                self._blocks = (
                    CompiledBlocks(
                        self.env,
                        self.policy,
                        steps=blocks.steps,
                        exact=blocks.exact,
                        mode=blocks.mode,
                        cpp_wrapper=False,
                    )
                    if blocks.cpp_wrapper
                    else None
                )
        advance = eager_advance(self.env, self.policy)
        return Outcomes(
            **run_episode(self.env, self.policy, genomes, seed=seed, advance=advance, **record)
        )


def __getattr__(name: str):
    if name == "RayEvaluator":  # lives in qd.evaluation_ray (imports Ray lazily)
        from qd.evaluation_ray import RayEvaluator

        return RayEvaluator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
