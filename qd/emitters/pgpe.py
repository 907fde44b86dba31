"""SERENE's PGPE emitter option (``emitter_type="pgpe"``), on EvoTorch's functional PGPE.

Each emitter is a PGPE search on reward (Sehnke et al. 2010, as EvoTorch implements it:
mirrored sampling, centered ranking, ClipUp on the center) started at its ancestor with the
standard deviation ``sigma_e`` on every gene (the same genome-space distance rule as the
elitist emitter), population ``mu`` (6: three mirrored pairs), center step
``sigma_e / 2`` (ClipUp's maximum speed ``sigma_e``), standard-deviation step 0.1 with at most
20 % change per generation. A batch of ``E`` emitters is ONE batched PGPE state:
``evotorch.algorithms.functional.pgpe_ask`` / ``pgpe_tell`` over ``[E, D]`` centers.

Samples are drawn by EvoTorch under a torch seed taken from SERENE's generator (so runs are
deterministic and resume exactly), then clipped to the gene bounds for evaluation; the
gradient uses the unclipped samples. A generation whose rows were cut by the budget (reward
``-inf`` padding) does not update that emitter. An emitter stops (besides SERENE's stagnation
rule) when its standard deviation has collapsed below ``1e-12 sigma_e`` on every gene.
"""

from __future__ import annotations

import torch

from qd.emitters.elitist import EmitterConfig, update_best

CENTER_STEP = 0.5  # center learning rate = CENTER_STEP * sigma_e
STDEV_STEP = 0.1
STDEV_MAX_CHANGE = 0.2


class PGPEEmitters:
    """A batch of PGPE emitters with the interface of ``CMAEmitters``.

    Args:
        ancestors: ``[E, D]`` start points (the centers).
        sigmas: ``[E]`` initial standard deviations.
        config: bounds (``genome_low``/``genome_high``) and ``mu`` (population size, even).
        generator: CPU generator the sampling seeds are drawn from.
    """

    kind = "pgpe"
    _STATE = ("ancestors", "sigmas", "center", "velocity", "stdev", "best_genomes", "best_rewards")

    def __init__(
        self,
        ancestors: torch.Tensor,
        sigmas: torch.Tensor,
        config: EmitterConfig,
        generator: torch.Generator,
        **_,
    ) -> None:
        if config.mu % 2:
            raise ValueError(
                f"PGPE samples mirrored pairs: emitter_mu must be even, got {config.mu}"
            )
        self.config = config
        self.generator = generator
        self.ancestors = ancestors.float().clone()
        self.sigmas = sigmas.float().clone()
        self.center = self.ancestors.clone()
        self.velocity = torch.zeros_like(self.center)
        self.stdev = self.sigmas[:, None].expand_as(self.center).clone()
        self.best_genomes = self.ancestors.clone()
        self.best_rewards = torch.full((len(ancestors),), -float("inf"))
        self.history: list[torch.Tensor] = []
        self.generations = 0
        self.selected = torch.zeros(len(ancestors), 0, dtype=torch.long)
        self._samples: torch.Tensor | None = None

    @property
    def initial_size(self) -> int:
        return self.config.mu

    @property
    def generation_size(self) -> int:
        return self.config.mu

    def __len__(self) -> int:
        return self.center.shape[0]

    def _pgpe_state(self):
        """EvoTorch's batched PGPE state of the emitters."""
        from evotorch.algorithms.functional import pgpe

        state = pgpe(
            center_init=self.center,
            center_learning_rate=CENTER_STEP * self.sigmas,
            stdev_learning_rate=STDEV_STEP,
            objective_sense="max",
            ranking_method="centered",
            optimizer="clipup",
            stdev_init=self.stdev,
            stdev_max_change=STDEV_MAX_CHANGE,
            symmetric=True,
        )
        return state._replace(
            optimizer_state=state.optimizer_state._replace(velocity=self.velocity)
        )

    def ask(self) -> torch.Tensor:
        """One mirrored population per emitter, ``[E, mu, D]`` (clipped to the bounds)."""
        from evotorch.algorithms.functional import pgpe_ask

        if not len(self):
            return torch.zeros(0, self.config.mu, self.center.shape[1])
        seed = int(torch.randint(2**62, (1,), generator=self.generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._samples = pgpe_ask(self._pgpe_state(), popsize=self.config.mu)
        return self._samples.clamp(self.config.genome_low, self.config.genome_high)

    initial = ask

    def tell(
        self,
        offspring: torch.Tensor,
        rewards: torch.Tensor,
        measures: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One PGPE update per emitter whose whole population was evaluated (padding rows are
        ``-inf``); :attr:`selected` ``[E, mu]`` indexes the sampled population in
        ``[previous population; this one]``."""
        from evotorch.algorithms.functional import pgpe_tell

        rewards = rewards.float()
        samples = self._samples if self._samples is not None else offspring.float()
        complete = torch.isfinite(rewards).all(1)
        if complete.any():
            new = pgpe_tell(self._pgpe_state(), samples, torch.nan_to_num(rewards, neginf=0.0))
            keep = complete[:, None]
            self.center = torch.where(keep, new.optimizer_state.center, self.center)
            self.velocity = torch.where(keep, new.optimizer_state.velocity, self.velocity)
            self.stdev = torch.where(keep, new.stdev, self.stdev)
        self._samples = None
        shift = self.config.mu if self.history else 0
        self.selected = (shift + torch.arange(rewards.shape[1])).expand(len(self), -1)
        self.best_genomes, self.best_rewards = update_best(
            self.best_genomes, self.best_rewards, offspring.float(), rewards
        )
        self.history.append(rewards.clone())
        self.generations += 1
        return self.best_rewards

    def tell_initial(self, rewards: torch.Tensor, measures: torch.Tensor | None = None) -> None:
        """The initial generation is an ordinary PGPE generation."""
        offspring = self._samples.clamp(self.config.genome_low, self.config.genome_high)
        self.tell(offspring, rewards, measures)

    def reward_history(self) -> torch.Tensor:
        """Population rewards of every generation, ``[E, G, mu]``."""
        if not self.history:
            return torch.zeros(len(self), 0, self.config.mu)
        return torch.stack(self.history, 1)

    def should_stop(self) -> torch.Tensor:
        """``[E]`` bool: the standard deviation collapsed, or the center is not finite."""
        collapsed = (self.stdev < 1e-12 * self.sigmas[:, None]).all(1)
        return collapsed | ~torch.isfinite(self.center).all(1)

    def best(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.best_genomes, self.best_rewards

    # -- state ---------------------------------------------------------------------------------
    def state(self) -> dict[str, torch.Tensor]:
        """Tensors that rebuild the batch with :meth:`from_state` (between generations)."""
        state = {name: getattr(self, name).clone() for name in self._STATE}
        state["history"] = self.reward_history()
        return state

    @classmethod
    def from_state(
        cls,
        state: dict[str, torch.Tensor],
        config: EmitterConfig,
        generator: torch.Generator,
        generations: int,
        **_,
    ) -> PGPEEmitters:
        """Rebuild from :meth:`state`."""
        other = cls.__new__(cls)
        other.config, other.generator, other.generations = config, generator, generations
        for name in cls._STATE:
            setattr(other, name, state[name].clone())
        other.history = list(state["history"].unbind(1))
        other.selected = torch.zeros(len(other.center), 0, dtype=torch.long)
        other._samples = None
        return other

    def subset(self, keep: torch.Tensor) -> PGPEEmitters:
        """A new batch with the emitters where ``keep`` is True (independent copies)."""
        index = torch.nonzero(keep).flatten()
        state = {name: getattr(self, name)[index] for name in self._STATE}
        state["history"] = self.reward_history()[index]
        return PGPEEmitters.from_state(state, self.config, self.generator, self.generations)
