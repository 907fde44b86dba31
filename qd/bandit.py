"""Thompson-sampling bandit over a few settings (DvD's choice of the diversity weight lambda).

Each arm has a Beta(1, 1) prior. A pull of arm ``a`` at iteration t is a *success* when the
population's mean reward after the iteration, ``r[t+1]``, beats the best of the ``lookback``
mean rewards before it, ``max(r[t-lookback+1..t])``; pulls whose outcome is not known yet, or
that have fewer than ``lookback`` rewards before them, do not count. The posterior of each arm
counts the successes and failures among the last ``window`` decided pulls. The first
``random_pulls`` pulls are uniformly random, then the arm with the largest Beta sample is
pulled (Parker-Holder et al. 2020, authors' ``BayesianBandits``; ties count as failures, as
the paper's "improvement" reads, where the authors' code scores them 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qd.emitters.cma import rng_state, set_rng_state


@dataclass
class ThompsonBandit:
    """Beta-Bernoulli Thompson sampling over ``arms``.

    Attributes:
        arms: the values the bandit chooses between.
        window: decided pulls the posterior remembers.
        random_pulls: first pulls drawn uniformly.
        lookback: rewards a new reward must beat to count as a success.
        seed: seed of the bandit's numpy generator.
    """

    arms: tuple[float, ...] = (0.0, 0.5)
    window: int = 50
    random_pulls: int = 5
    lookback: int = 5
    seed: int = 0
    choices: list[int] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.arms) < 1:
            raise ValueError("the bandit needs at least one arm")
        if self.window < 1 or self.lookback < 1 or self.random_pulls < 0:
            raise ValueError("window and lookback must be >= 1, random_pulls >= 0")
        self.arms = tuple(float(a) for a in self.arms)
        self.rng = np.random.default_rng(self.seed)

    def observe(self, reward: float) -> None:
        """Record the mean reward measured before the next pull (``r[t]``)."""
        reward = float(reward)
        if not np.isfinite(reward):
            raise ValueError(f"bandit reward must be finite, got {reward}")
        self.rewards.append(reward)

    def outcomes(self) -> list[tuple[int, bool]]:
        """(arm, success) of the decided pulls, oldest first, at most ``window`` of them.

        Pull t used the rewards ``r[t-lookback+1..t]`` as the bar and ``r[t+1]`` as its
        result; ``r[t]`` is the reward observed just before pull t.
        """
        decided = []
        for t, arm in enumerate(self.choices):
            if t + 1 >= len(self.rewards) or t - self.lookback + 1 < 0:
                continue
            bar = max(self.rewards[t - self.lookback + 1 : t + 1])
            decided.append((arm, self.rewards[t + 1] > bar))
        return decided[-self.window :]

    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """Beta parameters ``(a, b)`` of every arm."""
        a = np.ones(len(self.arms))
        b = np.ones(len(self.arms))
        for arm, success in self.outcomes():
            if success:
                a[arm] += 1
            else:
                b[arm] += 1
        return a, b

    def choose(self) -> float:
        """Pull an arm; returns its value."""
        if len(self.choices) < self.random_pulls:
            arm = int(self.rng.integers(len(self.arms)))
        else:
            a, b = self.posterior()
            arm = int(np.argmax(self.rng.beta(a, b)))
        self.choices.append(arm)
        return self.arms[arm]

    def state_dict(self) -> dict:
        """JSON-serialisable state."""
        return {
            "choices": list(self.choices),
            "rewards": list(self.rewards),
            "rng": rng_state(self.rng),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.choices = [int(c) for c in state["choices"]]
        self.rewards = [float(r) for r in state["rewards"]]
        set_rng_state(self.rng, state["rng"])
