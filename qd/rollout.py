"""One fixed-length episode of a whole population, eager or in compiled blocks of steps.

The loop has no host synchronisation (no ``.item()``, no branching on tensor values): finished
episodes are handled with done-masks, and recordings happen at step indices known in advance.
Compiled, the episode runs in blocks of ``block_steps`` steps, each one call of a compiled
function (observe, policy, step, reward, done-mask, ``block_steps`` times): at the papers'
batch sizes (12 to 200 episodes) the cost of a step is the fixed cost of its ~90 tensor ops,
which one fused call per block removes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from qd.policies import BatchedMLP


def sample_steps(episode_length: int, count: int) -> list[int]:
    """``count`` equally spaced step numbers in ``[1, episode_length]``, the last one final."""
    if count <= 0:
        return []
    return sorted({round(episode_length * (k + 1) / count) for k in range(count)})


def segments(episode_length: int, stops: set[int]) -> list[int]:
    """Lengths of the runs of steps between recording steps (``stops``) and the episode end."""
    bounds = sorted({*stops, episode_length})
    previous, lengths = 0, []
    for bound in bounds:
        lengths.append(bound - previous)
        previous = bound
    return lengths


def advance_steps(env, policy: BatchedMLP, layers, state, fitness, alive, count: int):
    """``count`` steps of every episode (observe, policy, step, reward, done-mask): the one
    arithmetic of both the eager loop and the compiled blocks, written without in-place updates
    so that ``torch.compile`` can take it whole."""
    spec = env.spec
    for _ in range(count):
        state = env.step(state, policy.forward(layers, env.observe(state)))
        if not spec.final_reward_only:
            fitness = fitness + torch.where(alive, env.reward(state), torch.zeros_like(fitness))
        if spec.can_terminate:
            alive = alive & ~env.done(state)
    return state, fitness, alive


def make_block(env, policy: BatchedMLP, steps: int) -> Callable:
    """``block(layers, state, fitness, alive) -> (state, fitness, alive)``: ``steps`` steps."""

    def block(layers, state, fitness, alive):
        return advance_steps(env, policy, layers, state, fitness, alive, steps)

    return block


class CompiledBlocks:
    """Compiled blocks of ``steps`` steps and of one step (for the remainders), built lazily.

    Args:
        env, policy: what is rolled out.
        steps: steps per compiled call.
        exact: results bit-identical to the eager loop (see :mod:`qd.compiled`).
        mode: ``torch.compile`` mode.
        cpp_wrapper: call the compiled kernels from generated C++ (see
            :func:`qd.compiled.compile_function`).
    """

    def __init__(
        self,
        env,
        policy: BatchedMLP,
        *,
        steps: int,
        exact: bool,
        mode: str | None,
        cpp_wrapper: bool = False,
    ) -> None:
        if steps <= 0:
            raise ValueError(f"steps per compiled call must be > 0, got {steps}")
        self.env, self.policy, self.steps = env, policy, int(steps)
        self.exact, self.mode, self.cpp_wrapper = bool(exact), mode, bool(cpp_wrapper)
        self._blocks: dict[int, Callable] = {}

    def block(self, steps: int) -> Callable:
        """The compiled function advancing ``steps`` steps (``steps`` is 1 or ``self.steps``)."""
        if steps not in self._blocks:
            from qd.compiled import compile_function

            fn = compile_function(
                make_block(self.env, self.policy, steps),
                exact=self.exact,
                mode=self.mode,
                cpp_wrapper=self.cpp_wrapper,
                dynamic=None,
            )
            fn = _batch_dynamic(fn)
            if self.mode == "reduce-overhead":  # CUDA graphs: each call starts a new step
                graph_fn = fn

                def fn(*args, _fn=graph_fn):
                    torch.compiler.cudagraph_mark_step_begin()
                    return _fn(*args)

            self._blocks[steps] = fn
        return self._blocks[steps]

    def advance(self, layers, state, fitness, alive, count: int):
        """``count`` steps: full blocks, then single steps."""
        for _ in range(count // self.steps):
            state, fitness, alive = self.block(self.steps)(layers, state, fitness, alive)
        for _ in range(count % self.steps):
            state, fitness, alive = self.block(1)(layers, state, fitness, alive)
        return state, fitness, alive


def _batch_dynamic(fn: Callable) -> Callable:
    """Wrap a compiled block so that its first call marks the batch dimension dynamic.

    One compile then serves every batch size (later calls' fresh tensors match its guards),
    while the env's and policy's own sizes (lasers, joints, layer widths) stay static: inductor
    specialises its kernels to them and each call passes one symbolic size (speeds in the
    README's rollout table).
    """
    first = True

    def block(layers, state, fitness, alive):
        nonlocal first
        if first:
            _mark_batch_dynamic((layers, state, fitness, alive), fitness.shape[0])
            first = False
        return fn(layers, state, fitness, alive)

    return block


def _mark_batch_dynamic(tree, batch: int) -> None:
    """Mark dimension 0 of every tensor in ``tree`` (tensors, lists, tuples, dicts and
    dataclasses of them) whose size is ``batch`` as dynamic (a hint: an env whose code fixes the
    batch size specialises it, and dynamo recompiles on a new size as usual)."""
    if isinstance(tree, torch.Tensor):
        if tree.ndim and tree.shape[0] == batch and batch > 1:
            torch._dynamo.maybe_mark_dynamic(tree, 0)
    elif isinstance(tree, (list, tuple)):
        for item in tree:
            _mark_batch_dynamic(item, batch)
    elif isinstance(tree, dict):
        for item in tree.values():
            _mark_batch_dynamic(item, batch)
    elif dataclasses.is_dataclass(tree):
        for field in dataclasses.fields(tree):
            _mark_batch_dynamic(getattr(tree, field.name), batch)


def eager_advance(env, policy: BatchedMLP) -> Callable:
    """The eager counterpart of :meth:`CompiledBlocks.advance` (the reference arithmetic)."""

    def advance(layers, state, fitness, alive, count: int):
        return advance_steps(env, policy, layers, state, fitness, alive, count)

    return advance


def run_episode(
    env,
    policy: BatchedMLP,
    genomes: torch.Tensor,
    *,
    seed: int,
    advance: Callable,
    n_frames: int = 0,
    n_traj: int = 0,
    n_path: int = 0,
) -> dict[str, torch.Tensor | None]:
    """Roll out one episode per genome; the fields of :class:`qd.evaluation.Outcomes`.

    ``advance(layers, state, fitness, alive, count)`` moves every episode ``count`` steps
    (:func:`eager_advance` or :meth:`CompiledBlocks.advance`).
    """
    spec = env.spec
    device = genomes.device
    batch = genomes.shape[0]
    layers = policy.unflatten(genomes)
    generator = torch.Generator(device=device).manual_seed(int(seed))
    if n_frames and hasattr(env, "prepare_render"):  # envs that render only when asked
        env.prepare_render()
    state = env.reset(batch, device=device, generator=generator)
    frame_steps = set(sample_steps(spec.episode_length, n_frames))
    traj_steps = set(sample_steps(spec.episode_length, n_traj))
    path_steps = set(sample_steps(spec.episode_length, n_path))
    frames, traj, path = [], [], []
    fitness = torch.zeros(batch, device=device)
    alive = torch.ones(batch, dtype=torch.bool, device=device)
    t = 0
    for count in segments(spec.episode_length, frame_steps | traj_steps | path_steps):
        state, fitness, alive = advance(layers, state, fitness, alive, count)
        t += count
        if t in traj_steps:
            traj.append(env.observe(state))
        if t in frame_steps:
            frames.append(env.render(state))
        if t in path_steps:
            path.append(env.descriptor(state))
    if spec.final_reward_only:
        fitness = env.reward(state)
    return {
        "fitness": fitness,
        "reward_area": env.reward_area(state),
        "descriptor": env.descriptor(state),
        "final_obs": env.observe(state),
        "frames": torch.stack(frames, 1) if frames else None,
        "trajectory": torch.stack(traj, 1) if traj else None,
        "path": torch.stack(path, 1) if path else None,
    }
