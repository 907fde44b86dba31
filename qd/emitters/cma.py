"""SERENE's CMA-ES emitter option, built on pyribs's CMA-ES.

Each emitter is a CMA-ES on reward started at its ancestor with ``sigma0 = sigma_e`` (the same
genome-space distance rule as the elitist emitter), population 6, ``mu = 3`` parents with
log-weights, and bounds [-5, 5] handled by pyribs's resampling. It ends, besides SERENE's
stagnation rule, when the stop test of the CMA-ES the authors used (``cmaes`` 0.6.0's
``should_stop``: flat rewards, tolx, tolxup, no-effect coordinate and axis, conditioning) fires
(:func:`cma_should_stop`). The implementation is
:class:`ribs.emitters.opt.CMAEvolutionStrategy`: it is already a dependency, it is the
implementation pyribs's own CMA-ME uses, and its state is a handful of numpy arrays that
checkpoint without pickling. Its ask/tell are per instance, so a batch of ``E`` CMA-ES emitters
loops over its instances for the O(D^2) sampling and update; their *evaluations* are still one
batched rollout, which is where the time goes (a 94-gene update takes ~0.1 ms against ~40 ms
for the 6 episodes it scores).
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import torch
from ribs.emitters.opt import CMAEvolutionStrategy

from qd.emitters.elitist import EmitterConfig, update_best

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
        self.selected = torch.zeros(len(ancestors), 0, dtype=torch.long)

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
        """Rank each population by reward (padding rows are ``-inf``) and update.

        The emitter's population is the sampled one: :attr:`selected` ``[E, 6]`` indexes it in
        ``[previous population; this one]``.
        """
        rewards = rewards.float()
        shift = self.config.mu if self.history else 0
        self.selected = (shift + torch.arange(rewards.shape[1])).expand(len(self), -1)
        for strategy, values in zip(self.strategies, rewards.double().numpy(), strict=True):
            order = np.argsort(-values, kind="stable")
            strategy.tell(order, values[order], self.config.mu // 2)
        self.best_genomes, self.best_rewards = update_best(
            self.best_genomes, self.best_rewards, offspring.float(), rewards
        )
        self.history.append(rewards.clone())  # the generation's population rewards [E, 6]
        self.generations += 1
        return self.best_rewards

    def tell_initial(self, rewards: torch.Tensor, measures: torch.Tensor | None = None) -> None:
        """The initial generation is an ordinary CMA-ES generation."""
        offspring = torch.from_numpy(np.stack([s._solutions for s in self.strategies])).float()
        self.tell(offspring, rewards, measures)

    def reward_history(self) -> torch.Tensor:
        return torch.stack(self.history, 1)

    def should_stop(self) -> torch.Tensor:
        """``[E]`` bool: CMA-ES's own stop test (:func:`cma_should_stop`) per emitter."""
        if not self.history:
            return torch.zeros(len(self), dtype=torch.bool)
        history = self.reward_history()
        sigmas = self.sigmas.tolist()
        stops = [cma_should_stop(s, sigmas[i], history[i]) for i, s in enumerate(self.strategies)]
        return torch.tensor(stops, dtype=torch.bool)

    def best(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.best_genomes, self.best_rewards

    # -- state ---------------------------------------------------------------------------------
    def state(self) -> dict[str, torch.Tensor]:
        """Tensors (CMA-ES arrays, and their scalars + numpy RNG states as a JSON byte tensor)
        that rebuild the batch with :meth:`from_state`."""
        state = {
            "ancestors": self.ancestors,
            "sigmas": self.sigmas,
            "best_genomes": self.best_genomes,
            "best_rewards": self.best_rewards,
            "history": (
                self.reward_history() if self.history else torch.zeros(len(self), 0, self.config.mu)
            ),
        }
        meta = [cma_state(s, f"cma{i}.", state) for i, s in enumerate(self.strategies)]
        encoded = bytearray(json.dumps(meta).encode())
        state["cma.meta"] = torch.frombuffer(encoded, dtype=torch.uint8)
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
        other.selected = torch.zeros(len(other.ancestors), 0, dtype=torch.long)
        meta = json.loads(bytes(state["cma.meta"].tolist()).decode())
        other.strategies = []
        for i, sigma0 in enumerate(other.sigmas.tolist()):
            strategy = other._strategy(sigma0, None)
            load_cma_state(strategy, f"cma{i}.", state, meta[i])
            other.strategies.append(strategy)
        return other

    def subset(self, keep: torch.Tensor) -> CMAEmitters:
        """A new batch with the emitters where ``keep`` is True (independent copies)."""
        index = torch.nonzero(keep).flatten().tolist()
        other = copy.copy(self)
        other.strategies = [copy.deepcopy(self.strategies[i]) for i in index]
        other.ancestors, other.sigmas = self.ancestors[index], self.sigmas[index]
        other.best_genomes, other.best_rewards = self.best_genomes[index], self.best_rewards[index]
        other.history = [h[index] for h in self.history]
        return other


def cma_should_stop(opt: CMAEvolutionStrategy, sigma0: float, rewards: torch.Tensor) -> bool:
    """The stop test of ``cmaes`` 0.6.0 (the CMA-ES of the authors' emitter) on a pyribs CMA-ES.

    ``rewards [G, k]`` are the populations' rewards of the ``G`` generations told so far (non-
    finite entries, rows cut by the budget, are ignored). With ``D`` the square roots of the
    covariance's eigenvalues and ``B`` its eigenvectors, it stops when: more than
    ``10 + ceil(30 n / k)`` generations ran and the rewards of the last that many span less
    than 1e-12; ``sigma * diag(C)`` and ``sigma * pc`` are both below ``1e-12 sigma0``
    everywhere; ``sigma * max(D) > 1e4``; adding ``0.2 sigma sqrt(C_ii)`` to coordinate ``i``
    of the mean leaves it unchanged for some ``i``; adding ``0.1 sigma D_i B_i`` (axis
    ``i = G mod n``) leaves the mean unchanged; or ``max(D) / min(D) > 1e14``. The
    eigensystem is pyribs's (refreshed lazily, as it samples with it).
    """
    n = opt.solution_dim
    generations, popsize = rewards.shape
    term = 10 + math.ceil(30 * n / popsize)
    if generations > term:
        recent = rewards[-term:]
        recent = recent[torch.isfinite(recent)]
        if len(recent) and float(recent.max() - recent.min()) < 1e-12:
            return True
    sigma, mean, pc = float(opt.sigma), opt.mean, opt.pc
    diag = np.diag(opt.cov.cov)
    tolx = 1e-12 * sigma0
    if np.all(sigma * diag < tolx) and np.all(sigma * pc < tolx):
        return True
    d = np.sqrt(np.maximum(opt.cov.eigenvalues, 0))
    if sigma * d.max() > 1e4:
        return True
    if np.any(mean == mean + 0.2 * sigma * np.sqrt(diag)):
        return True
    i = generations % n
    if np.all(mean == mean + 0.1 * sigma * d[i] * opt.cov.eigenbasis[:, i]):
        return True
    return bool(d.min() <= 0 or d.max() / d.min() > 1e14)


def rng_state(rng: np.random.Generator) -> dict:
    """JSON-able state of a numpy Generator."""
    return rng.bit_generator.state


def set_rng_state(rng: np.random.Generator, state: dict) -> None:
    rng.bit_generator.state = state


def numpy_tensor(array) -> torch.Tensor:
    return torch.from_numpy(np.array(array, copy=True))


def cma_state(opt: CMAEvolutionStrategy, prefix: str, tensors: dict) -> dict:
    """Write a pyribs CMAEvolutionStrategy's arrays to ``tensors``; return its JSON meta."""
    if not isinstance(opt, CMAEvolutionStrategy):
        raise TypeError(f"cannot checkpoint {type(opt).__name__}; only CMAEvolutionStrategy")
    for name in _VECTORS:
        tensors[f"{prefix}{name}"] = numpy_tensor(getattr(opt, name))
    for name in _MATRICES:
        tensors[f"{prefix}cov.{name}"] = numpy_tensor(getattr(opt.cov, name))
    return {
        "sigma": float(opt.sigma),
        "current_eval": int(opt.current_eval),
        "condition_number": float(opt.cov.condition_number),
        "updated_eval": int(opt.cov.updated_eval),
        "rng": rng_state(opt._rng),
    }


def load_cma_state(opt: CMAEvolutionStrategy, prefix: str, tensors: dict, meta: dict) -> None:
    """Inverse of :func:`cma_state` on an optimizer built with the same settings."""
    opt.reset(np.zeros(opt.solution_dim, dtype=opt.dtype))
    for name in _VECTORS:
        setattr(opt, name, tensors[f"{prefix}{name}"].numpy().copy())
    for name in _MATRICES:
        setattr(opt.cov, name, tensors[f"{prefix}cov.{name}"].numpy().copy())
    opt.sigma = meta["sigma"]
    opt.current_eval = meta["current_eval"]
    opt.cov.condition_number = meta["condition_number"]
    opt.cov.updated_eval = meta["updated_eval"]
    set_rng_state(opt._rng, meta["rng"])
