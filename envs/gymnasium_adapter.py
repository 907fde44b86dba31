"""Any registered Gymnasium environment as a batched env: ``envs.make("gym:<id>", ...)``.

``gym:module:<id>`` makes Gymnasium import ``module`` first (a module that registers ``<id>``).
B episodes run in one Gymnasium vector env (``sync`` or ``async``), kept and reused by later
batches of the same size. Gymnasium envs are stateful CPU objects, so the adapter's state holds
the vector env next to the tensors the protocol exposes; everything else (evaluator, archive,
algorithms) works unchanged. A new reset of a batch size ends the previous episodes of that
size (one batch of episodes at a time per size, as the evaluator runs them). The guide:
``docs/gymnasium.md``.

* Actions: a ``Box`` action space takes the policy's outputs in [-1, 1] scaled to the box
  bounds (``action_scaling="bounds"``, default) or clipped (``"clip"``); a ``Discrete`` space
  takes the argmax of ``n`` outputs.
* Episodes that end (terminated or truncated) are frozen: their observation, descriptor and
  reward stop changing while the other episodes go on (the sub-env's autoreset is ignored).
* Descriptor: ``descriptor="final_obs"`` (whole final observation), ``"final_obs[i:j]"`` (a
  slice), ``"info[key1,key2]"`` (entries of the last step's ``info``) or a callable
  ``f(final_obs [B, obs]) -> [B, d]`` (see :mod:`envs.gym_descriptors`). Bounds default to
  the observation space's bounds of the slice when they are finite; otherwise give
  ``descriptor_bounds``. The coverage grid (``grid_cells`` per dimension) is refused above
  a million cells, with the ``grid_cells`` that fits.
* Seeding: every episode is reset with the same seed drawn from the evaluator's generator
  (``seeding="same"``, the papers' deterministic evaluation), or seed + episode index
  (``"per_episode"``).
* Renders: only when frames are asked for (the evaluator calls :meth:`prepare_render`, e.g.
  for TAXONS spaces or ``qd replay --gif``) are vector envs made with
  ``render_mode="rgb_array"``; frames are resized to ``image_size`` (64) squares. Known limit:
  frames of a sub-env whose episode ended before the others show it after Gymnasium's
  auto-reset (observations and descriptors stay frozen at the end); frames are exact for
  episodes that run to the episode length.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from envs.base import EnvSpec
from envs.gym_descriptors import check_grid, info_hint, info_values, parse_rule

CACHED_VEC_ENVS = 4
"""Vector envs kept per adapter (one per batch size and render mode; the oldest is closed)."""


def _import_gymnasium():
    try:
        import gymnasium
    except ImportError:
        raise ImportError(
            "Gymnasium environments need the optional dependency gymnasium: "
            "pip install 'qdtorch[gym]' (or pip install gymnasium)"
        ) from None
    return gymnasium


@dataclass
class GymState:
    """Batched episode state: the vector env and the tensors the protocol exposes."""

    vec: Any
    obs: torch.Tensor  # [B, obs] current (frozen once done) observation
    last_reward: torch.Tensor  # [B] reward of the last step (0 once done)
    finished: torch.Tensor  # [B] bool, episode over
    t: int
    info_desc: torch.Tensor | None = None  # [B, d] descriptor from ``info`` (info rules)


class GymnasiumEnv:
    """Batched adapter for the Gymnasium environment ``env_id``.

    Args:
        env_id: registered Gymnasium id, e.g. ``MountainCarContinuous-v0``.
        descriptor: ``final_obs``, ``final_obs[i:j]``, ``info[key1,key2]`` or a callable (see
            module docstring).
        descriptor_bounds: ``(low, high)`` sequences; required when they cannot be inferred.
        grid_cells: cells per descriptor dimension of the coverage grid (at most a million
            cells in all).
        episode_length: steps (default: the id's ``max_episode_steps``, else 1000).
        vectorization: ``sync`` or ``async``.
        seeding: ``same`` or ``per_episode``.
        action_scaling: ``bounds`` or ``clip`` (Box actions).
        make_kwargs: extra keyword arguments for ``gymnasium.make``.
    """

    def __init__(
        self,
        env_id: str,
        *,
        descriptor: str | Callable[[torch.Tensor], torch.Tensor] = "final_obs",
        descriptor_bounds: tuple | None = None,
        grid_cells: int = 50,
        episode_length: int | None = None,
        vectorization: str = "sync",
        seeding: str = "same",
        action_scaling: str = "bounds",
        make_kwargs: dict | None = None,
    ) -> None:
        gym = _import_gymnasium()
        if vectorization not in ("sync", "async"):
            raise ValueError(f"vectorization must be 'sync' or 'async', got {vectorization!r}")
        if seeding not in ("same", "per_episode"):
            raise ValueError(f"seeding must be 'same' or 'per_episode', got {seeding!r}")
        if action_scaling not in ("bounds", "clip"):
            raise ValueError(f"action_scaling must be 'bounds' or 'clip', got {action_scaling!r}")
        self.env_id = env_id
        self.make_kwargs = dict(make_kwargs or {})
        self.vectorization = vectorization
        self.seeding = seeding
        self.action_scaling = action_scaling
        self._vecs: OrderedDict[tuple[int, bool], Any] = OrderedDict()
        self._want_frames = False
        probe = self._make_single(gym)
        obs_space, act_space = probe.observation_space, probe.action_space
        self._render_ok = "rgb_array" in (probe.metadata.get("render_modes") or [])
        max_steps = probe.spec.max_episode_steps if probe.spec is not None else None
        try:
            if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
                raise ValueError(
                    f"{env_id}: unsupported observation space {obs_space}; the adapter needs a "
                    "1-D Box (flatten other spaces with a Gymnasium wrapper first)"
                )
            try:
                self.rule = parse_rule(descriptor, descriptor_bounds, obs_space)
            except ValueError as err:  # name the info keys the env offers instead
                hint = "" if str(descriptor).startswith("info[") else info_hint(probe)
                raise ValueError(f"gym:{env_id}: {err}{hint}") from None
        finally:
            probe.close()
        if isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1:
            self.discrete = False
            self.action_low = act_space.low.astype(np.float32)
            self.action_high = act_space.high.astype(np.float32)
            action_size = act_space.shape[0]
        elif isinstance(act_space, gym.spaces.Discrete):
            self.discrete = True
            action_size = int(act_space.n)
        else:
            raise ValueError(
                f"{env_id}: unsupported action space {act_space}; the adapter supports a 1-D "
                "Box or a Discrete space"
            )
        low, high = self.rule.low, self.rule.high
        grid_shape = check_grid(grid_cells, len(low), what=f"gym:{env_id}")
        length = int(episode_length or max_steps or 1000)
        self.spec = EnvSpec(
            name=f"gym:{env_id}",
            obs_size=int(obs_space.shape[0]),
            action_size=int(action_size),
            episode_length=length,
            descriptor_size=len(low),
            descriptor_low=tuple(float(v) for v in low),
            descriptor_high=tuple(float(v) for v in high),
            grid_shape=grid_shape,
            reward_areas=0,
            final_reward_only=False,
            can_terminate=True,
            random_reset=True,
            options={
                "descriptor": self.rule.text,
                "descriptor_bounds": [list(map(float, low)), list(map(float, high))],
                "grid_cells": int(grid_cells),
                "episode_length": length,
                "vectorization": vectorization,
                "seeding": seeding,
                "action_scaling": action_scaling,
                "make_kwargs": self.make_kwargs,
            },
        )

    # -- construction helpers -----------------------------------------------------------------
    def _make_single(self, gym, **extra):
        try:
            return gym.make(self.env_id, **self.make_kwargs, **extra)
        except gym.error.DependencyNotInstalled as err:
            raise ImportError(f"{self.env_id} needs a missing dependency: {err}") from None
        except gym.error.Error as err:
            raise KeyError(
                f"unknown Gymnasium id {self.env_id!r} ({err}); an id registered by your own "
                "module: gym:<module>:<id> (Gymnasium imports the module first) or --import "
                "<module>; list the registered ids with "
                "`python -c 'import gymnasium; gymnasium.pprint_registry()'`"
            ) from None

    # -- protocol -----------------------------------------------------------------------------
    def prepare_render(self) -> None:
        """Make later vector envs with ``render_mode="rgb_array"`` (the evaluator calls this
        before episodes whose frames it records)."""
        if not self._render_ok:
            raise ValueError(f"{self.env_id} has no rgb_array render mode")
        self._want_frames = True

    def _vector_env(self, gym, batch_size: int):
        """The cached vector env of ``batch_size`` copies (made on first use)."""
        key = (int(batch_size), self._want_frames)
        if key in self._vecs:
            self._vecs.move_to_end(key)
            return self._vecs[key]
        kwargs = dict(self.make_kwargs)
        if self._want_frames:
            kwargs["render_mode"] = "rgb_array"
        try:
            vec = gym.make_vec(
                self.env_id, num_envs=batch_size, vectorization_mode=self.vectorization, **kwargs
            )
        except gym.error.DependencyNotInstalled as err:
            raise ImportError(f"{self.env_id} needs a missing dependency: {err}") from None
        self._vecs[key] = vec
        while len(self._vecs) > CACHED_VEC_ENVS:
            self._vecs.popitem(last=False)[1].close()
        return vec

    def close(self) -> None:
        """Close the cached vector envs (later resets make new ones)."""
        while self._vecs:
            self._vecs.popitem()[1].close()

    def reset(self, batch_size: int, *, device="cpu", generator=None) -> GymState:
        """Reset the vector env of ``batch_size`` copies (seeded, see ``seeding``); it is made
        on the first reset of that size and reused afterwards."""
        gym = _import_gymnasium()
        seed = 0
        if generator is not None:
            seed = int(
                torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device)
            )
        vec = self._vector_env(gym, batch_size)
        seeds = (
            [seed] * batch_size if self.seeding == "same" else [seed + i for i in range(batch_size)]
        )
        obs, infos = vec.reset(seed=seeds)
        device = torch.device(device)
        info_desc = None
        if self.rule.info_keys:  # reset info when it has the keys, else zeros until the 1st step
            info_desc = torch.zeros(batch_size, self.rule.size, device=device)
            if all(k in infos for k in self.rule.info_keys):
                values, present = info_values(self.rule, infos, batch_size)
                info_desc = torch.where(
                    torch.as_tensor(present, device=device)[:, None],
                    torch.as_tensor(values, dtype=torch.float32, device=device),
                    info_desc,
                )
        return GymState(
            vec=vec,
            obs=torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=device),
            last_reward=torch.zeros(batch_size, device=device),
            finished=torch.zeros(batch_size, dtype=torch.bool, device=device),
            t=0,
            info_desc=info_desc,
        )

    def _to_actions(self, actions: torch.Tensor) -> np.ndarray:
        raw = actions.detach().cpu().numpy()
        if self.discrete:
            return raw.argmax(1)
        if self.action_scaling == "clip":
            return np.clip(raw, self.action_low, self.action_high)
        unit = np.clip(raw, -1.0, 1.0)
        return self.action_low + (unit + 1.0) * 0.5 * (self.action_high - self.action_low)

    def step(self, state: GymState, actions: torch.Tensor) -> GymState:
        """Step every sub-env; finished episodes keep their last observation and get 0 reward."""
        if bool(state.finished.all()):  # nothing left to step
            return GymState(
                state.vec,
                state.obs,
                torch.zeros_like(state.last_reward),
                state.finished,
                state.t + 1,
                state.info_desc,
            )
        obs, reward, terminated, truncated, infos = state.vec.step(self._to_actions(actions))
        device = state.obs.device
        obs = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=device)
        reward = torch.as_tensor(np.asarray(reward), dtype=torch.float32, device=device)
        ended = torch.as_tensor(np.asarray(terminated) | np.asarray(truncated), device=device)
        was = state.finished
        t = state.t + 1
        finished = was | ended | (t >= self.spec.episode_length)
        info_desc = state.info_desc
        if info_desc is not None:  # running episodes that reported the keys take the new values
            values, present = info_values(self.rule, infos, len(was))
            take = ~was & torch.as_tensor(present, device=device)
            new = torch.as_tensor(values, dtype=torch.float32, device=device)
            info_desc = torch.where(take[:, None], new, info_desc)
        return GymState(
            vec=state.vec,
            obs=torch.where(was[:, None], state.obs, obs),
            last_reward=torch.where(was, torch.zeros_like(reward), reward),
            finished=finished,
            t=t,
            info_desc=info_desc,
        )

    def observe(self, state: GymState) -> torch.Tensor:
        return state.obs

    def reward(self, state: GymState) -> torch.Tensor:
        return state.last_reward

    def reward_area(self, state: GymState) -> torch.Tensor:
        return torch.full(state.finished.shape, -1, dtype=torch.long, device=state.obs.device)

    def descriptor(self, state: GymState) -> torch.Tensor:
        if state.info_desc is not None:
            return state.info_desc
        return torch.as_tensor(self.rule.from_obs(state.obs), dtype=torch.float32)

    def done(self, state: GymState) -> torch.Tensor:
        return state.finished

    def render(self, state: GymState) -> torch.Tensor:
        """Frames of every sub-env resized to ``image_size`` squares, ``[B, H, W, 3]`` uint8."""
        if not self._render_ok:
            raise ValueError(f"{self.env_id} has no rgb_array render mode")
        if getattr(state.vec, "render_mode", None) != "rgb_array":
            raise ValueError(
                f"{self.env_id}: these episodes were not made for frames; call "
                "env.prepare_render() before env.reset() (the evaluator does when it records "
                "frames)"
            )
        gym = _import_gymnasium()
        try:
            frames = state.vec.render()
        except gym.error.DependencyNotInstalled as err:
            raise ImportError(
                f"rendering {self.env_id} needs a missing dependency: {err}"
            ) from None
        images = torch.as_tensor(np.stack(frames)).permute(0, 3, 1, 2).float()
        size = self.spec.image_size
        small = torch.nn.functional.interpolate(images, size=(size, size), mode="area")
        return small.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).to(state.obs.device)
