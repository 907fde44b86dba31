"""Environment protocol shared by every batched simulator in :mod:`envs`.

An environment is a stateless object with a frozen :class:`EnvSpec` and pure batched functions
over a small state dataclass of tensors (the population is the batch dimension)::

    state = env.reset(batch_size, device=..., generator=...)
    state = env.step(state, actions)          # finished episodes must stay unchanged
    obs = env.observe(state)                  # [B, obs_size]
    r = env.reward(state)                     # [B], reward of the last step
    area = env.reward_area(state)             # [B] long, -1 outside every reward area
    desc = env.descriptor(state)              # [B, descriptor_size], ground truth
    frames = env.render(state)                # [B, H, W, 3] uint8

An env that renders only on request (the Gymnasium adapter) may define ``prepare_render()``:
the evaluator calls it before a reset whose episodes it will render.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

MAX_GRID_CELLS = 1_000_000
"""Most cells of a coverage grid (a run's metrics keep 3 numbers per cell, checkpointed)."""


@dataclass(frozen=True)
class EnvSpec:
    """Static description of an environment.

    Attributes:
        name: registry name.
        obs_size: observation size.
        action_size: action size.
        episode_length: number of steps of a full episode (fixed-length loop).
        descriptor_size: size of the ground-truth behaviour descriptor.
        descriptor_low: lower bound of each descriptor dimension.
        descriptor_high: upper bound of each descriptor dimension.
        grid_shape: cells per dimension of the coverage grid over the descriptor bounds.
        reward_areas: number of reward areas (``reward_area`` returns values in ``[-1, n)``).
        image_size: side of the square RGB render.
        final_reward_only: ``True`` when reward is only given at the last step, so that an
            evaluator may call ``reward`` once after the loop.
        can_terminate: ``True`` when episodes may end before ``episode_length`` (done-mask).
        random_reset: ``True`` when ``reset`` draws from its generator, so that the start state
            depends on the run's seed: episodes of runs with different seeds then cannot share
            one reset (lockstep seeds evaluate such an env one seed at a time).
        options: constructor options, for config files and archive headers.
    """

    name: str
    obs_size: int
    action_size: int
    episode_length: int
    descriptor_size: int
    descriptor_low: tuple[float, ...]
    descriptor_high: tuple[float, ...]
    grid_shape: tuple[int, ...]
    reward_areas: int
    image_size: int = 64
    final_reward_only: bool = True
    can_terminate: bool = False
    random_reset: bool = False
    options: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-serialisable form of the spec."""
        return {
            "name": self.name,
            "obs_size": self.obs_size,
            "action_size": self.action_size,
            "episode_length": self.episode_length,
            "descriptor_size": self.descriptor_size,
            "descriptor_low": list(self.descriptor_low),
            "descriptor_high": list(self.descriptor_high),
            "grid_shape": list(self.grid_shape),
            "reward_areas": self.reward_areas,
            "image_size": self.image_size,
            "final_reward_only": self.final_reward_only,
            "can_terminate": self.can_terminate,
            "random_reset": self.random_reset,
            "options": dict(self.options),
        }


def goal_reward(dist: torch.Tensor, radius: torch.Tensor, finished: torch.Tensor) -> torch.Tensor:
    """The seed papers' sparse reward: ``(r - d) / r`` of the best goal (0 outside every goal)
    where ``finished``, else 0. ``dist [B, G]`` to the goal centres, ``radius [G]``."""
    per_goal = ((radius - dist) / radius).clamp(min=0).max(1).values
    return torch.where(finished, per_goal, torch.zeros_like(per_goal))


def goal_area(dist: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Index ``[B]`` of the first goal containing each row (``dist < radius``), -1 if none."""
    inside = dist < radius
    first = inside.float().argmax(1)
    return torch.where(inside.any(1), first, torch.full_like(first, -1))


@runtime_checkable
class BatchedEnv(Protocol):
    """What the evaluator needs from an environment (see the module docstring)."""

    spec: EnvSpec

    def reset(
        self, batch_size: int, *, device: torch.device, generator: torch.Generator | None = None
    ): ...

    def step(self, state, actions: torch.Tensor): ...

    def observe(self, state) -> torch.Tensor: ...

    def reward(self, state) -> torch.Tensor: ...

    def reward_area(self, state) -> torch.Tensor: ...

    def descriptor(self, state) -> torch.Tensor: ...

    def done(self, state) -> torch.Tensor: ...

    def render(self, state) -> torch.Tensor: ...
