"""What DvD-ES and DvD-TD3 share: the lambda bandit's settings, the ``population`` archive of
the agents, and Adam moments in checkpoints."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from qd.archive import Archive, InsertionRule
from qd.bandit import ThompsonBandit


@dataclass
class BanditSettings:
    """How DvD chooses lambda, the weight of its diversity term (DvD-ES and DvD-TD3).

    Attributes:
        lambdas: the bandit's arms.
        fixed_lambda: use this lambda throughout instead of the bandit (``0.0``: no diversity).
        bandit_window: decided pulls the bandit remembers.
        bandit_random_pulls: first pulls drawn uniformly.
        bandit_lookback: rewards a new mean reward must beat to count as a success.
    """

    lambdas: list[float] = field(default_factory=lambda: [0.0, 0.5])
    fixed_lambda: float | None = None
    bandit_window: int = 50
    bandit_random_pulls: int = 5
    bandit_lookback: int = 5

    def check_bandit(self, *, high: float = float("inf")) -> None:
        """Raise ValueError for lambdas outside ``[0, high]``."""
        if self.fixed_lambda is not None and not 0 <= self.fixed_lambda <= high:
            raise ValueError(f"fixed_lambda must be in [0, {high}], got {self.fixed_lambda}")
        if not self.lambdas or any(not 0 <= x <= high for x in self.lambdas):
            raise ValueError(f"lambdas must be values in [0, {high}], got {self.lambdas}")
        self.lambdas = [float(x) for x in self.lambdas]

    def make_bandit(self, seed: int) -> ThompsonBandit:
        """The Thompson bandit over ``lambdas``."""
        return ThompsonBandit(
            arms=tuple(self.lambdas),
            window=self.bandit_window,
            random_pulls=self.bandit_random_pulls,
            lookback=self.bandit_lookback,
            seed=seed,
        )

    def first_lambda(self) -> float:
        """lambda before the bandit's first pull (its first arm is not pulled yet: 0)."""
        return float(self.fixed_lambda if self.fixed_lambda is not None else 0.0)


def population_archive(
    *,
    genome_size: int,
    embedding_size: int,
    ground_truth_dim: int,
    agents: int,
    env_spec,
    device,
    seed: int,
) -> Archive:
    """The ``population`` archive of DvD's agents: genomes, returns, probe-state embeddings."""
    return Archive(
        solution_dim=genome_size,
        measure_dim=embedding_size,
        ground_truth_dim=ground_truth_dim,
        insertion=InsertionRule("all"),
        device=device,
        seed=seed,
        env_spec=env_spec,
        initial_capacity=agents,
        name="population",
    )


def adam_tensors(optimizer: torch.optim.Adam, param: torch.Tensor, prefix: str) -> dict:
    """An Adam's moments and step count for ``param`` as checkpoint tensors."""
    st = optimizer.state.get(param)
    if not st:
        return {}
    return {
        f"{prefix}.exp_avg": st["exp_avg"],
        f"{prefix}.exp_avg_sq": st["exp_avg_sq"],
        f"{prefix}.step": torch.as_tensor(st["step"], dtype=torch.float32).reshape(1),
    }


def restore_adam(param: torch.Tensor, lr: float, tensors: dict, prefix: str) -> torch.optim.Adam:
    """A new Adam over ``param`` carrying the moments saved by :func:`adam_tensors`."""
    optimizer = torch.optim.Adam([param], lr=lr)
    if f"{prefix}.exp_avg" in tensors:
        optimizer.state[param] = {
            "step": tensors[f"{prefix}.step"].reshape(()).clone(),
            "exp_avg": tensors[f"{prefix}.exp_avg"].to(param.device).clone(),
            "exp_avg_sq": tensors[f"{prefix}.exp_avg_sq"].to(param.device).clone(),
        }
    return optimizer
