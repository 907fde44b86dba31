"""Replay buffer of DvD-TD3 (:mod:`qd.algorithms.dvd_td3`): one ring buffer of transitions for
all agents, stored as rows of one tensor; batches for every agent are drawn in one call."""

from __future__ import annotations

import torch


class ReplayBuffer:
    """Ring buffer of transitions ``(obs, action, reward, next_obs, not_done)`` as tensors."""

    def __init__(self, capacity: int, obs_size: int, action_size: int, device) -> None:
        self.capacity = int(capacity)
        width = 2 * obs_size + action_size + 2
        self.data = torch.zeros(0, width, device=device)
        self.obs_size, self.action_size = obs_size, action_size
        self.position = 0
        self.size = 0

    def add(self, obs, action, reward, next_obs, not_done) -> None:
        rows = torch.cat([obs, action, reward[:, None], next_obs, not_done[:, None]], 1).float()
        if self.data.shape[0] < self.capacity:  # grow until full
            grow = min(self.capacity, max(2 * self.data.shape[0], self.size + len(rows), 1024))
            extra = torch.zeros(grow - self.data.shape[0], self.data.shape[1], device=rows.device)
            self.data = torch.cat([self.data, extra])
        index = (self.position + torch.arange(len(rows), device=rows.device)) % self.capacity
        self.data[index] = rows
        self.position = int((self.position + len(rows)) % self.capacity)
        self.size = min(self.capacity, self.size + len(rows))

    def sample(self, shape: tuple[int, ...], generator: torch.Generator):
        """Transitions ``[*shape, ...]`` drawn uniformly (with replacement)."""
        index = torch.randint(self.size, shape, generator=generator).to(self.data.device)
        rows = self.data[index]
        o, a = self.obs_size, self.action_size
        return (
            rows[..., :o],
            rows[..., o : o + a],
            rows[..., o + a],
            rows[..., o + a + 1 : 2 * o + a + 1],
            rows[..., -1],
        )
