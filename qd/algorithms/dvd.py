"""DvD-ES: a population of ES agents kept diverse by the volume of their behaviours.

Parker-Holder et al., "Effective Diversity in Population Based Reinforcement Learning"
(NeurIPS 2020) and the authors' code (jparkerholder/DvD_ES). Every iteration:

1. One batch through the evaluator holds the M agents (their returns are the iteration's
   population rewards) and, for every agent i and direction j, the antithetic pair
   ``theta_i +- sigma eps_ij`` (M x N x 2 episodes).
2. Probe states: ``probe_states`` states drawn from a pool of at most ``state_pool`` visited
   states (the pool is a random subsample of everything recorded so far). The embedding of a
   policy is its actions on the probe states, concatenated.
3. For each direction j and sign, the M perturbed agents' embeddings are z-scored per column
   (over the agents) and clipped to [-2, 2], and D = det K with the RBF kernel
   ``K = exp(-||x - y||^2 / F)`` (F features, sklearn's default gamma = 1 / F); the 2N
   determinants are z-scored together. Rewards are z-scored per agent over its 2N episodes.
   Fitness ``F = lambda D + (1 - lambda) R`` and ``g_i = sum_j (F+_ij - F-_ij) eps_ij / N``.
4. Each agent takes an Adam step (lr 0.05) along ``g_i`` with its own persistent moments: one
   ``torch.optim.Adam`` over the ``[M, D]`` agent tensor is exactly that, since Adam works
   element by element. (The authors' code reset the moments every step: a flagged bug.)
5. lambda comes from a Thompson-sampling bandit over ``lambdas`` (:class:`qd.bandit`), or is
   fixed with ``fixed_lambda``.

Observations are normalised per agent with running mean / std of the states its episodes
visited (the authors' MeanStdFilter); the normaliser is folded into each genome's first layer
(``BatchedMLP.fold_normaliser``), so the batched evaluator runs plain genomes and the
``population`` archive stores policies that act on raw observations (``qd replay`` works).

Deviations: the authors rescale the concatenated gradient to norm D before Adam, which Adam's
per-element normalisation makes (almost) irrelevant, so it is not done; visited states are the
``trajectory_samples`` equally spaced observations of each episode (all steps by default on
point-trap). If the budget ends in the middle of an iteration, the last partial batch only
updates the metrics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from qd.algorithms.base import Algorithm
from qd.algorithms.dvd_shared import (
    BanditSettings,
    adam_tensors,
    population_archive,
    restore_adam,
)
from qd.archive import Archive, rbf_log_det
from qd.evaluation import Outcomes
from qd.policies import BatchedMLP


@dataclass
class DvDESConfig(BanditSettings):
    """DvD-ES settings (the authors' defaults).

    Attributes:
        agents: population size M.
        directions: antithetic directions per agent and iteration N.
        sigma: perturbation scale.
        learning_rate: Adam step size.
        probe_states: states the embeddings are computed on.
        state_pool: most visited states kept to draw probe states from.
        lambdas: the bandit's arms (weight of the diversity term).
        fixed_lambda: use this lambda every iteration instead of the bandit (``0.0`` is plain
            ES on reward with M independent agents).
        bandit_window: decided pulls the bandit remembers.
        bandit_random_pulls: first pulls drawn uniformly.
        bandit_lookback: rewards a new mean reward must beat to count as a success.
        normalise_observations: per-agent running mean / std observation normaliser.
        trajectory_samples: observations recorded per episode for the normaliser and the state
            pool (0: the whole episode).
        space: behaviour space of the ground-truth metrics (``ground_truth``).
    """

    agents: int = 5
    directions: int = 100
    sigma: float = 0.1
    learning_rate: float = 0.05
    probe_states: int = 20
    state_pool: int = 100
    normalise_observations: bool = True
    trajectory_samples: int = 0
    space: str = "ground_truth"

    def __post_init__(self) -> None:
        for name in ("agents", "directions", "probe_states", "state_pool"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.agents < 2 and (self.fixed_lambda is None or self.fixed_lambda != 0):
            raise ValueError("diversity needs agents >= 2 (or fixed_lambda=0)")
        if self.sigma <= 0 or self.learning_rate <= 0:
            raise ValueError("sigma and learning_rate must be > 0")
        self.check_bandit(high=1.0)
        if self.trajectory_samples < 0:
            raise ValueError("trajectory_samples must be >= 0")
        if self.space != "ground_truth":
            raise ValueError("DvD-ES embeds policies on probe states; space must be ground_truth")


def initial_genomes(policy: BatchedMLP, count: int, generator: torch.Generator) -> torch.Tensor:
    """The authors' initialisation: weights ~ N(0, 1) / sqrt(fan_in * fan_out), biases
    ~ N(0, 1) / sqrt(fan_out)."""
    layers = policy.unflatten(torch.zeros(count, policy.genome_size))
    for layer in layers:
        fan_in, fan_out = layer.weight.shape[1:]
        layer.weight.copy_(
            torch.randn(layer.weight.shape, generator=generator) / (fan_in * fan_out) ** 0.5
        )
        if layer.bias is not None:
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator) / fan_out**0.5)
    return policy.flatten(layers)


def standardise(values: torch.Tensor, dim=None) -> torch.Tensor:
    """``(x - mean) / (std + 1e-8)`` (population std, as numpy's)."""
    if dim is None:
        return (values - values.mean()) / (values.std(unbiased=False) + 1e-8)
    mean = values.mean(dim, keepdim=True)
    return (values - mean) / (values.std(dim, unbiased=False, keepdim=True) + 1e-8)


def population_determinants(embeddings: torch.Tensor) -> torch.Tensor:
    """DvD-ES's diversity of each set of agents' embeddings ``[..., M, F]`` -> ``[...]``.

    Columns are z-scored over the M agents and clipped to [-2, 2]; the determinant of the RBF
    kernel with gamma = 1 / F (length scale sqrt(F / 2)) is computed through a Cholesky
    factorisation with jitter (:func:`qd.archive.rbf_log_det`).
    """
    normalised = standardise(embeddings, dim=-2).clamp(-2, 2)
    lengthscale = (embeddings.shape[-1] / 2) ** 0.5
    return torch.exp(rbf_log_det(normalised.double(), lengthscale=lengthscale)).float()


def es_gradient(fitness: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Antithetic ES gradient per agent: ``sum_j (F+_ij - F-_ij) eps_ij / N``.

    ``fitness [M, N, 2]`` (sign +, -), ``noise [M, N, D]`` -> ``[M, D]``.
    """
    diff = fitness[..., 0] - fitness[..., 1]
    return torch.einsum("mn,mnd->md", diff, noise) / noise.shape[1]


class RunningStats:
    """Per-agent running mean / variance (parallel Welford), ``[M, obs]``."""

    def __init__(self, agents: int, size: int) -> None:
        self.count = torch.zeros(agents, dtype=torch.float64)
        self.mean = torch.zeros(agents, size, dtype=torch.float64)
        self.m2 = torch.zeros(agents, size, dtype=torch.float64)

    def update(self, samples: torch.Tensor) -> None:
        """Add ``samples [M, S, obs]`` (S observations per agent)."""
        samples = samples.double()
        n = samples.shape[1]
        mean = samples.mean(1)
        m2 = ((samples - mean[:, None]) ** 2).sum(1)
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)[:, None]
        self.m2 = self.m2 + m2 + delta**2 * (self.count * n / total)[:, None]
        self.count = total

    def std(self) -> torch.Tensor:
        """Standard deviation (1 where fewer than 2 samples or zero variance)."""
        var = self.m2 / (self.count - 1).clamp(min=1)[:, None]
        std = var.sqrt()
        enough = (self.count > 1)[:, None] & (std > 1e-8)
        return torch.where(enough, std, torch.ones_like(std))


class DvDES(Algorithm):
    """DvD-ES on the run's batched evaluator (see the module docstring)."""

    name = "dvd-es"
    main_archive = "population"
    needs_policy = True
    policy_kind = "tanh"
    policy_hidden = (16, 16)
    policy_options = {"output_bias": False}

    def __init__(
        self,
        config: DvDESConfig,
        *,
        genome_size: int,
        measure_dim: int,
        env_spec: dict,
        policy: BatchedMLP,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        if policy.genome_size != genome_size:
            raise ValueError("policy and genome size disagree")
        self.config = config
        self.policy = policy
        self.genome_size = genome_size
        self.device = torch.device(device)
        self.env_spec = dict(env_spec)
        self.generator = torch.Generator().manual_seed(seed)
        m, obs = config.agents, policy.obs_size
        self.agents = torch.nn.Parameter(initial_genomes(policy, m, self.generator))
        self.optimizer = torch.optim.Adam([self.agents], lr=config.learning_rate)
        self.stats = RunningStats(m, obs)
        self.pool = torch.zeros(0, obs)
        self.bandit = config.make_bandit(seed + 1)
        self.iteration = 0
        self.lam = config.first_lambda()
        self._noise: torch.Tensor | None = None
        self.population = population_archive(
            genome_size=genome_size,
            embedding_size=config.probe_states * policy.action_size,
            ground_truth_dim=measure_dim,
            agents=m,
            env_spec=env_spec,
            device=self.device,
            seed=seed + 2,
        )

    # -- what the evaluator records --------------------------------------------------------------
    @property
    def recordings(self) -> dict:
        samples = self.config.trajectory_samples or int(self.env_spec["episode_length"])
        return {"trajectory": samples}

    @property
    def archives(self) -> dict[str, Archive]:
        return {"population": self.population}

    @property
    def batch_size(self) -> int:
        """Episodes per iteration: M agents + M x N x 2 perturbations."""
        c = self.config
        return c.agents * (1 + 2 * c.directions)

    # -- ask / tell ------------------------------------------------------------------------------
    def _effective(self, genomes: torch.Tensor, agent: torch.Tensor) -> torch.Tensor:
        """Genomes acting on raw observations (normaliser of ``agent`` folded in)."""
        if not self.config.normalise_observations:
            return genomes
        mean = self.stats.mean.float()[agent]
        std = self.stats.std().float()[agent]
        return self.policy.fold_normaliser(genomes, mean, std)

    def _owners(self) -> torch.Tensor:
        """Agent of each row of the batch: agents, then + and - perturbations (agent-major)."""
        c = self.config
        agents = torch.arange(c.agents)
        per_agent = agents.repeat_interleave(c.directions)
        return torch.cat([agents, per_agent, per_agent])

    def ask(self, max_count: int | None = None) -> torch.Tensor:
        """The agents and all their antithetic perturbations, as one batch."""
        c = self.config
        m, n, d = c.agents, c.directions, self.genome_size
        self._noise = torch.randn(m, n, d, generator=self.generator)
        theta = self.agents.detach()
        plus = (theta[:, None] + c.sigma * self._noise).reshape(m * n, d)
        minus = (theta[:, None] - c.sigma * self._noise).reshape(m * n, d)
        genomes = self._effective(torch.cat([theta, plus, minus]), self._owners())
        if max_count is not None:
            genomes = genomes[: max(0, int(max_count))]
        return genomes.to(self.device)

    def tell(self, genomes: torch.Tensor, outcomes: Outcomes, descriptors: torch.Tensor) -> dict:
        """Population rewards, bandit, embeddings, determinants, one Adam step per agent."""
        c = self.config
        m, n = c.agents, c.directions
        returns = outcomes.fitness.float().cpu()
        if not torch.isfinite(returns).all():
            raise ValueError("episode returns contain NaN or infinite values")
        count = len(genomes)
        agent_returns = returns[:m]
        info = {
            "iteration": self.iteration,
            "population_reward_mean": float(agent_returns.mean()),
            "population_reward_max": float(agent_returns.max()),
        }
        if count < self.batch_size:  # budget cut: the partial batch only updates metrics
            info["lambda"] = self.lam
            return info
        states = outcomes.trajectory.float().cpu()  # [B, S, obs]
        self._update_pool(states)
        probe = self._probe_states()
        effective = genomes.float().cpu()
        embeddings = self.policy.actions_on(effective, probe).flatten(1)  # [B, F]
        self._record_population(effective[:m], agent_returns, embeddings[:m], outcomes)
        if c.fixed_lambda is None:
            self.bandit.observe(float(agent_returns.mean()))
            self.lam = self.bandit.choose()
        rewards = torch.stack(
            [returns[m : m + m * n].view(m, n), returns[m + m * n :].view(m, n)], -1
        )  # [M, N, 2]
        fitness = (1 - self.lam) * standardise(rewards.view(m, -1), dim=1).view(m, n, 2)
        if self.lam > 0:
            pert = torch.stack(
                [embeddings[m : m + m * n].view(m, n, -1), embeddings[m + m * n :].view(m, n, -1)],
                -1,
            )  # [M, N, F, 2]
            sets = pert.permute(1, 3, 0, 2)  # [N, 2, M, F]: direction j, sign, agents
            dets = population_determinants(sets)  # [N, 2]
            fitness = fitness + self.lam * standardise(dets)[None]
            info["det_mean"] = float(dets.mean())
        gradient = es_gradient(fitness, self._noise)
        self.optimizer.zero_grad()
        self.agents.grad = -gradient  # ascent
        self.optimizer.step()
        if c.normalise_observations:
            owners = self._owners()
            grouped = states[torch.argsort(owners, stable=True)]  # agent-major, batch order kept
            per_agent = grouped.reshape(m, -1, states.shape[-1])
            self.stats.update(per_agent)
        self.iteration += 1
        info.update(self._diversity_metrics(embeddings[:m]))
        info["lambda"] = self.lam
        return info

    # -- helpers ---------------------------------------------------------------------------------
    def _update_pool(self, states: torch.Tensor) -> None:
        visited = torch.cat([self.pool, states.flatten(0, 1)])
        if len(visited) > self.config.state_pool:
            pick = torch.randperm(len(visited), generator=self.generator)
            visited = visited[pick[: self.config.state_pool]]
        self.pool = visited

    def _probe_states(self) -> torch.Tensor:
        k = min(self.config.probe_states, len(self.pool))
        pick = torch.randperm(len(self.pool), generator=self.generator)[:k]
        probe = self.pool[pick]
        if k < self.config.probe_states:  # fewer visited states than probes: repeat them
            probe = probe[torch.arange(self.config.probe_states) % k]
        return probe

    def _record_population(self, genomes, agent_returns, embeddings, outcomes) -> None:
        m = self.config.agents
        self.population.clear()
        self.population.add(
            genomes.to(self.device),
            agent_returns.to(self.device),
            embeddings.to(self.device),
            ground_truth=outcomes.descriptor[:m].float().to(self.device),
            reward_area=outcomes.reward_area[:m].to(self.device),
        )

    def _diversity_metrics(self, embeddings: torch.Tensor) -> dict:
        if len(embeddings) < 2:  # a single agent (plain ES): no pairs
            return {"embedding_distance_mean": 0.0, "embedding_distance_min": 0.0, "log_det": 0.0}
        distances = torch.cdist(embeddings, embeddings)
        off = ~torch.eye(len(embeddings), dtype=torch.bool)
        normalised = standardise(embeddings, dim=0).clamp(-2, 2)
        lengthscale = (embeddings.shape[1] / 2) ** 0.5
        return {
            "embedding_distance_mean": float(distances[off].mean()),
            "embedding_distance_min": float(distances[off].min()),
            "log_det": float(rbf_log_det(normalised.double(), lengthscale=lengthscale)),
        }

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Agents, Adam moments, normalisers, state pool, generator and bandit."""
        tensors = {
            "agents": self.agents.detach().clone(),
            "generator": self.generator.get_state(),
            "stats.count": self.stats.count,
            "stats.mean": self.stats.mean,
            "stats.m2": self.stats.m2,
            "pool": self.pool,
        }
        tensors.update(adam_tensors(self.optimizer, self.agents, "adam"))
        meta = {
            "config": asdict(self.config),
            "iteration": self.iteration,
            "lambda": self.lam,
            "bandit": self.bandit.state_dict(),
        }
        return {"tensors": tensors, "meta": meta}

    def load_state_dict(self, state: dict, archives: dict[str, Archive]) -> None:
        """Restore :meth:`state_dict` (Adam moments included)."""
        t, meta = state["tensors"], state["meta"]
        with torch.no_grad():
            self.agents.copy_(t["agents"])
        self.generator.set_state(t["generator"])
        self.stats.count = t["stats.count"].clone()
        self.stats.mean = t["stats.mean"].clone()
        self.stats.m2 = t["stats.m2"].clone()
        self.pool = t["pool"].clone()
        self.optimizer = restore_adam(self.agents, self.config.learning_rate, t, "adam")
        self.iteration = int(meta["iteration"])
        self.lam = float(meta["lambda"])
        self.bandit.load_state_dict(meta["bandit"])
        self.population = archives["population"]
