"""Meta-schedulers: choose exploration (NS) or exploitation (emitters) for the next chunk.

Every scheduler answers :meth:`choose` with ``"explore"`` or ``"exploit"`` and is told, after
the chunk, what it earned through :meth:`update`. The first chunk is always exploration. The
chunk reward used by the UCB scheduler follows STAX's code: after an exploration chunk
``-tanh(change in candidates + emitters)`` (many new candidates: time to exploit), after an
exploitation chunk ``tanh(change)``, and -1 when there was nothing to exploit.
"""

from __future__ import annotations

import math

import torch

EXPLORE, EXPLOIT = "explore", "exploit"


def chunk_reward(choice: str, emitters_before: int, emitters_after: int, *, ran: bool) -> float:
    """STAX's scheduler reward for a finished chunk (see module docstring)."""
    change = emitters_after - emitters_before
    if choice == EXPLORE:
        return -math.tanh(change)
    return math.tanh(change) if ran else -1.0


class Scheduler:
    """Base class: always explores first; ``state_dict``/``load_state_dict`` for checkpoints."""

    name = "base"

    def __init__(self) -> None:
        self.choice: str | None = None

    def choose(self) -> str:
        """Next chunk's kind."""
        self.choice = EXPLORE if self.choice is None else self._next()
        return self.choice

    def _next(self) -> str:
        raise NotImplementedError

    def update(self, *, reward: float, emitters_available: bool, evaluations: int) -> None:
        """Feedback after a chunk (total ``evaluations`` used so far)."""

    def state_dict(self) -> dict:
        return {"choice": self.choice}

    def load_state_dict(self, state: dict) -> None:
        self.choice = state["choice"]


class Alternating(Scheduler):
    """SERENE's default: exploration and exploitation chunks alternate."""

    name = "alternating"

    def _next(self) -> str:
        return EXPLOIT if self.choice == EXPLORE else EXPLORE


class FixedProbability(Scheduler):
    """Exploration with probability ``p`` (0.5), exploitation otherwise."""

    name = "fixed"

    def __init__(self, p_explore: float = 0.5, *, seed: int = 0) -> None:
        super().__init__()
        if not 0.0 <= p_explore <= 1.0:
            raise ValueError(f"p_explore must be in [0, 1], got {p_explore}")
        self.p_explore = float(p_explore)
        self.generator = torch.Generator().manual_seed(seed)

    def _next(self) -> str:
        draw = float(torch.rand((), generator=self.generator))
        return EXPLORE if draw < self.p_explore else EXPLOIT

    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "p_explore": self.p_explore,
            "generator": self.generator.get_state().tolist(),
        }

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.p_explore = state["p_explore"]
        self.generator.set_state(torch.tensor(state["generator"], dtype=torch.uint8))


class TimeDecaying(FixedProbability):
    """Exploration with probability remaining budget / total budget."""

    name = "time"

    def __init__(self, total_budget: int, *, seed: int = 0) -> None:
        super().__init__(1.0, seed=seed)
        self.total_budget = int(total_budget)

    def update(self, *, reward: float, emitters_available: bool, evaluations: int) -> None:
        self.p_explore = max(0.0, (self.total_budget - evaluations) / self.total_budget)


class DiscountedUCB(Scheduler):
    """UCB over the two arms with incremental value estimates (STAX's "mab", c = 1).

    Explores until emitters or candidates exist; then picks ``argmax Q + c sqrt(ln t / n)``
    (an arm never pulled first). ``Q += step (reward - Q)`` with ``step = alpha``, or
    ``1 / pulls`` when ``alpha = -1`` (the default, a sample average).
    """

    name = "ucb"

    def __init__(self, c: float = 1.0, alpha: float = -1.0) -> None:
        super().__init__()
        self.c = float(c)
        self.alpha = float(alpha)
        self.values = [0.0, 0.0]
        self.pulls = [0, 0]
        self.emitters_available = False

    def _next(self) -> str:
        if not self.emitters_available:
            return EXPLORE
        total = sum(self.pulls)
        scores = [
            math.inf if n == 0 else q + self.c * math.sqrt(math.log(total) / n)
            for q, n in zip(self.values, self.pulls, strict=True)
        ]
        return EXPLORE if scores[0] >= scores[1] else EXPLOIT

    def update(self, *, reward: float, emitters_available: bool, evaluations: int) -> None:
        self.emitters_available = emitters_available
        arm = 0 if self.choice == EXPLORE else 1
        self.pulls[arm] += 1
        step = 1.0 / self.pulls[arm] if self.alpha == -1 else self.alpha
        self.values[arm] += step * (reward - self.values[arm])

    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "values": list(self.values),
            "pulls": list(self.pulls),
            "emitters_available": self.emitters_available,
        }

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.values = list(state["values"])
        self.pulls = list(state["pulls"])
        self.emitters_available = state["emitters_available"]


SCHEDULERS = {
    "alternating": Alternating,
    "fixed": FixedProbability,
    "time": TimeDecaying,
    "ucb": DiscountedUCB,
}
