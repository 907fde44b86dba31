"""SERENE's CMA-ES emitter option, built on pyribs's CMA-ES.

Each emitter is a CMA-ES on reward started at its ancestor with ``sigma0 = sigma_e`` (the same
genome-space distance rule as the elitist emitter), population 6, ``mu = 3`` parents with
log-weights, and bounds [-5, 5] handled by pyribs's resampling. The implementation is
:class:`ribs.emitters.opt.CMAEvolutionStrategy`: it is already a dependency, it is the
implementation pyribs's own CMA-ME uses, and its state is a handful of numpy arrays that
checkpoint without pickling. Its ask/tell are per instance, so a batch of ``E`` CMA-ES emitters
loops over its instances for the O(D^2) sampling and update; their *evaluations* are still one
batched rollout, which is where the time goes (a 94-gene update takes ~0.1 ms against ~40 ms
for the 6 episodes it scores).
"""

from __future__ import annotations

import json

import numpy as np
import torch
from ribs.emitters.opt import CMAEvolutionStrategy

from qd.emitters.elitist import EmitterConfig

_VECTORS = ("mean", "pc", "ps")
_MATRICES = ("cov", "eigenbasis", "eigenvalues", "invsqrt")


class CMAEmitters:
    """A batch of CMA-ES emitters with the same interface as ``ElitistEmitters``.

    Args:
        ancestors: ``[E, D]`` start points.
        sigmas: ``[E]`` initial step sizes.
        config: bounds (``genome_low``/``genome_high``) and ``mu`` (population size, 6).
        generator: CPU generator; each instance's numpy seed is drawn from it.
    """

    kind = "cma"

    def __init__(
        self,
        ancestors: torch.Tensor,
        sigmas: torch.Tensor,
        config: EmitterConfig,
        generator: torch.Generator,
    ) -> None:
        self.config = config
        self.generator = generator
        self.ancestors = ancestors.float().clone()
        self.sigmas = sigmas.float().clone()
        seeds = torch.randint(2**31 - 1, (len(ancestors),), generator=generator).tolist()
        sigma_list = self.sigmas.tolist()
        self.strategies = [
            self._strategy(s, seed) for s, seed in zip(sigma_list, seeds, strict=True)
        ]
        for strategy, x0 in zip(self.strategies, self.ancestors.double().numpy(), strict=True):
            strategy.reset(x0)
        self.best_genomes = self.ancestors.clone()
        self.best_rewards = torch.full((len(ancestors),), -float("inf"))
        self.history: list[torch.Tensor] = []
        self.generations = 0

    def _strategy(self, sigma: float, seed: int | None) -> CMAEvolutionStrategy:
        d = self.ancestors.shape[1]
        return CMAEvolutionStrategy(
            sigma0=sigma,
            solution_dim=d,
            batch_size=self.config.mu,
            seed=seed,
            lower_bounds=np.full(d, self.config.genome_low),
            upper_bounds=np.full(d, self.config.genome_high),
        )

    @property
    def initial_size(self) -> int:
        return self.config.mu

    @property
    def generation_size(self) -> int:
        return self.config.mu

    def __len__(self) -> int:
        return len(self.strategies)

    def ask(self) -> torch.Tensor:
        """One CMA-ES population per emitter, ``[E, 6, D]``."""
        if not self.strategies:
            return torch.zeros(0, self.config.mu, self.ancestors.shape[1])
        return torch.from_numpy(np.stack([s.ask() for s in self.strategies])).float()

    initial = ask

    def tell(
        self,
        offspring: torch.Tensor,
        rewards: torch.Tensor,
        measures: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Rank each population by reward (padding rows are ``-inf``) and update."""
        rewards = rewards.float()
        for strategy, values in zip(self.strategies, rewards.double().numpy(), strict=True):
            order = np.argsort(-values, kind="stable")
            strategy.tell(order, values[order], self.config.mu // 2)
        top, where = rewards.max(1)
        better = top > self.best_rewards
        picked = offspring.float()[torch.arange(len(rewards)), where]
        self.best_genomes = torch.where(better[:, None], picked, self.best_genomes)
        self.best_rewards = torch.where(better, top, self.best_rewards)
        finite = torch.where(torch.isfinite(rewards), rewards, torch.nan)
        self.history.append(finite.nanmean(1))
        self.generations += 1
        return self.best_rewards

    def tell_initial(self, rewards: torch.Tensor, measures: torch.Tensor | None = None) -> None:
        """The initial generation is an ordinary CMA-ES generation."""
        offspring = torch.from_numpy(np.stack([s._solutions for s in self.strategies])).float()
        self.tell(offspring, rewards, measures)

    def reward_history(self) -> torch.Tensor:
        return torch.stack(self.history, 1)

    def best(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.best_genomes, self.best_rewards

    @property
    def parent_rewards(self) -> torch.Tensor:
        """Best reward so far, ``[E, 1]`` (what SERENE compares before/after a generation)."""
        return self.best_rewards[:, None].clone()

    # -- state ---------------------------------------------------------------------------------
    def state(self) -> dict[str, torch.Tensor]:
        """Tensors (and a JSON-encoded numpy RNG state) that rebuild the batch."""
        e = len(self)
        state = {
            "ancestors": self.ancestors,
            "sigmas": self.sigmas,
            "best_genomes": self.best_genomes,
            "best_rewards": self.best_rewards,
            "history": self.reward_history() if self.history else torch.zeros(e, 0),
        }
        for name in _VECTORS:
            state[f"cma.{name}"] = _stack([getattr(s, name) for s in self.strategies], e)
        for name in _MATRICES:
            state[f"cma.{name}"] = _stack([getattr(s.cov, name) for s in self.strategies], e)
        scalars = [
            [s.sigma, s.current_eval, s.cov.condition_number, s.cov.updated_eval]
            for s in self.strategies
        ]
        state["cma.scalars"] = torch.tensor(scalars, dtype=torch.float64).view(e, 4)
        rng = json.dumps([s._rng.bit_generator.state for s in self.strategies])
        state["cma.rng"] = torch.frombuffer(bytearray(rng.encode()), dtype=torch.uint8)
        return state

    @classmethod
    def from_state(
        cls,
        state: dict[str, torch.Tensor],
        config: EmitterConfig,
        generator: torch.Generator,
        generations: int,
        **_,
    ) -> CMAEmitters:
        """Rebuild from :meth:`state`."""
        other = cls.__new__(cls)
        other.config, other.generator, other.generations = config, generator, generations
        other.ancestors, other.sigmas = state["ancestors"].clone(), state["sigmas"].clone()
        other.best_genomes = state["best_genomes"].clone()
        other.best_rewards = state["best_rewards"].clone()
        other.history = list(state["history"].unbind(1))
        rng_states = json.loads(bytes(state["cma.rng"].tolist()).decode())
        other.strategies = []
        for i, sigma0 in enumerate(other.sigmas.tolist()):
            s = other._strategy(sigma0, None)
            s.reset(state["cma.mean"][i].numpy())
            for name in _VECTORS:
                setattr(s, name, state[f"cma.{name}"][i].numpy().copy())
            for name in _MATRICES:
                setattr(s.cov, name, state[f"cma.{name}"][i].numpy().copy())
            sigma, current, condition, updated = state["cma.scalars"][i].tolist()
            s.sigma, s.current_eval = sigma, int(current)
            s.cov.condition_number, s.cov.updated_eval = condition, int(updated)
            s._rng.bit_generator.state = rng_states[i]
            other.strategies.append(s)
        return other

    def subset(self, keep: torch.Tensor) -> CMAEmitters:
        """A new batch with the emitters where ``keep`` is True (independent copies)."""
        index = torch.nonzero(keep).flatten().tolist()
        state = self.state()
        rng = json.loads(bytes(state.pop("cma.rng").tolist()).decode())
        picked = {k: v[index] for k, v in state.items()}
        picked["cma.rng"] = torch.frombuffer(
            bytearray(json.dumps([rng[i] for i in index]).encode()), dtype=torch.uint8
        )
        return CMAEmitters.from_state(picked, self.config, self.generator, self.generations)


def _stack(arrays: list, count: int) -> torch.Tensor:
    if not count:
        return torch.zeros(0)
    return torch.from_numpy(np.stack([np.asarray(a, dtype=np.float64) for a in arrays]))
