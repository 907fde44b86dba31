"""DvD-TD3: M TD3 agents sharing a replay buffer, kept diverse by a determinant term.

Parker-Holder et al. (NeurIPS 2020), gradient-based DvD. Every agent is a TD3 learner (Fujimoto
et al. 2018) with the authors' hyperparameters: actor and twin critics of 256 x 256 ReLU units,
Adam lr 3e-4, batch 256, 25,000 random start steps, policy delay 2, target noise 0.2 clipped to
0.5, exploration noise 0.1, tau 0.005, gamma 0.99. The actors' loss adds

    - lambda * log det(beta K + (1 - beta) I),   K_ij = exp(-||phi_i - phi_j||^2 / F),

where ``phi_i`` are agent i's actions on ``probe_states`` states drawn from the replay buffer
(F features), beta = 0.99, the log det through a Cholesky factorisation; lambda is chosen by the
same Thompson-sampling bandit as DvD-ES (:mod:`qd.bandit`), once per round of episodes, from the
round's mean return.

Everything is batched: the M actors are rows of one ``[M, D]`` genome tensor (a
:class:`qd.policies.ReluMLP`, so the ``population`` archive holds ordinary genomes that ``qd
replay`` can run), the 2M critics rows of another; the environment steps M x ``envs_per_agent``
episodes at once; each update samples an independent batch per agent. One Adam over each
genome tensor gives every agent its own moments (Adam works element by element).

A *round* is one episode of every environment row; ``qd run``'s budget counts episodes, so a
round costs M x ``envs_per_agent`` evaluations (the last round is cut to the budget). Updates:
one per agent per environment step (``updates_per_step`` per row) once ``start_steps`` steps per
agent have been collected with uniform random actions.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from qd.algorithms.base import Learner
from qd.algorithms.dvd_shared import (
    BanditSettings,
    adam_tensors,
    population_archive,
    restore_adam,
)
from qd.algorithms.replay_buffer import ReplayBuffer
from qd.archive import Archive, rbf_kernel
from qd.evaluation import Outcomes
from qd.policies import BatchedMLP, ReluMLP, linear_init


@dataclass
class DvDTD3Config(BanditSettings):
    """DvD-TD3 settings (the authors' defaults).

    Besides the fields below, those of :class:`qd.algorithms.dvd_shared.BanditSettings`:
    ``lambdas``, ``fixed_lambda`` (``0.0``: M independent TD3s), ``bandit_window``,
    ``bandit_random_pulls``, ``bandit_lookback``.

    Attributes:
        agents: population size M.
        envs_per_agent: parallel episodes per agent.
        learning_rate: Adam step size of actors and critics.
        batch_size: transitions per agent and update.
        start_steps: environment steps per agent with uniform random actions before learning.
        updates_per_step: gradient updates per agent and environment step of one row.
        policy_delay: critic updates per actor update.
        target_noise: std of the target policy smoothing noise.
        target_noise_clip: clip of that noise.
        exploration_noise: std of the Gaussian exploration noise (actions in [-1, 1]).
        tau: target networks' soft update rate.
        gamma: discount.
        beta: weight of K in ``log det(beta K + (1 - beta) I)``.
        probe_states: states (drawn from the buffer) the embeddings are computed on.
        buffer_size: replay buffer capacity (transitions, all agents together).
        space: behaviour space of the ground-truth metrics (``ground_truth``).
    """

    agents: int = 5
    envs_per_agent: int = 1
    learning_rate: float = 3e-4
    batch_size: int = 256
    start_steps: int = 25_000
    updates_per_step: int = 1
    policy_delay: int = 2
    target_noise: float = 0.2
    target_noise_clip: float = 0.5
    exploration_noise: float = 0.1
    tau: float = 0.005
    gamma: float = 0.99
    beta: float = 0.99
    probe_states: int = 20
    buffer_size: int = 1_000_000
    space: str = "ground_truth"

    def __post_init__(self) -> None:
        self.check_bandit()
        for name in ("agents", "envs_per_agent", "batch_size", "policy_delay", "probe_states"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.start_steps < 0 or self.updates_per_step < 0:
            raise ValueError("start_steps and updates_per_step must be >= 0")
        if not 0 < self.beta <= 1 or not 0 < self.tau <= 1 or not 0 <= self.gamma <= 1:
            raise ValueError("beta and tau must be in (0, 1], gamma in [0, 1]")
        if self.space != "ground_truth":
            raise ValueError("DvD-TD3 embeds actors on probe states; space must be ground_truth")
        if self.buffer_size < self.batch_size:
            raise ValueError("buffer_size must be >= batch_size")


def diversity_log_det(embeddings: torch.Tensor, *, beta: float) -> torch.Tensor:
    """``log det(beta K + (1 - beta) I)`` of the agents' embeddings ``[M, F]`` (RBF kernel,
    gamma = 1 / F), through a Cholesky factorisation; differentiable."""
    features = embeddings.shape[1]
    kernel = rbf_kernel(embeddings, lengthscale=(features / 2) ** 0.5)
    eye = torch.eye(len(embeddings), dtype=kernel.dtype, device=kernel.device)
    chol = torch.linalg.cholesky(beta * kernel + (1 - beta) * eye)
    return 2 * torch.log(torch.diagonal(chol)).sum()


class DvDTD3(Learner):
    """DvD-TD3 (see the module docstring). Interacts with the environment itself
    (:meth:`interact`), one round of episodes per call."""

    name = "dvd-td3"
    main_archive = "population"
    needs_policy = True
    policy_kind = "relu"
    policy_hidden = (256, 256)
    policy_options: dict = {}

    def __init__(
        self,
        config: DvDTD3Config,
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
        c = config
        self.config = config
        self.policy = policy
        self.device = torch.device(device)
        self.env_spec = dict(env_spec)
        self.generator = torch.Generator().manual_seed(seed)
        obs, act = policy.obs_size, policy.action_size
        self.critic_net = ReluMLP((obs + act, *policy.sizes[1:-1], 1), output="linear")
        m = c.agents
        self.actors = torch.nn.Parameter(linear_init(policy, m, self.generator).to(self.device))
        self.critics = torch.nn.Parameter(
            linear_init(self.critic_net, 2 * m, self.generator).to(self.device)
        )
        self.actor_targets = self.actors.detach().clone()
        self.critic_targets = self.critics.detach().clone()
        self.actor_optimizer = torch.optim.Adam([self.actors], lr=c.learning_rate)
        self.critic_optimizer = torch.optim.Adam([self.critics], lr=c.learning_rate)
        self.buffer = ReplayBuffer(c.buffer_size, obs, act, self.device)
        self.bandit = c.make_bandit(seed + 1)
        self.lam = c.first_lambda()
        self.steps = 0  # environment steps per agent row
        self.updates = 0
        self.rounds = 0
        self.population = population_archive(
            genome_size=genome_size,
            embedding_size=c.probe_states * act,
            ground_truth_dim=measure_dim,
            agents=m,
            env_spec=env_spec,
            device=self.device,
            seed=seed + 2,
        )

    @property
    def archives(self) -> dict[str, Archive]:
        return {"population": self.population}

    # -- networks ------------------------------------------------------------------------------
    def _act(self, genomes: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Actions ``[M, N, act]`` of the M actors on their own observations ``[M, N, obs]``."""
        return self.policy.forward_rows(self.policy.unflatten(genomes), obs)

    def _q(self, genomes: torch.Tensor, obs: torch.Tensor, actions: torch.Tensor):
        """Both critics of every agent: ``[M, N]`` twice (critic rows: agent i at i, M + i)."""
        m = self.config.agents
        inputs = torch.cat([obs, actions], -1).repeat(2, 1, 1)
        q = self.critic_net.forward_rows(self.critic_net.unflatten(genomes), inputs)[..., 0]
        return q[:m], q[m:]

    def _update(self) -> dict:
        c = self.config
        m = c.agents
        obs, action, reward, next_obs, not_done = self.buffer.sample(
            (m, c.batch_size), self.generator
        )
        with torch.no_grad():
            noise = torch.randn(action.shape, generator=self.generator).to(self.device)
            noise = (noise * c.target_noise).clamp(-c.target_noise_clip, c.target_noise_clip)
            next_action = (self._act(self.actor_targets, next_obs) + noise).clamp(-1, 1)
            q1, q2 = self._q(self.critic_targets, next_obs, next_action)
            target = reward + not_done * c.gamma * torch.minimum(q1, q2)
        q1, q2 = self._q(self.critics, obs, action)
        critic_loss = ((q1 - target) ** 2).mean(1).sum() + ((q2 - target) ** 2).mean(1).sum()
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        self.critic_optimizer.step()
        self.updates += 1
        info = {"critic_loss": critic_loss.detach() / m}  # a tensor: no host sync per update
        if self.updates % c.policy_delay:
            return info
        q_actor, _ = self._q(self.critics.detach(), obs, self._act(self.actors, obs))
        actor_loss = -q_actor.mean(1).sum()
        if self.lam > 0:
            probe, *_ = self.buffer.sample((c.probe_states,), self.generator)
            embeddings = self._embeddings(self.actors, probe)
            actor_loss = actor_loss - self.lam * diversity_log_det(embeddings, beta=c.beta)
        self.actor_optimizer.zero_grad()
        actor_loss.backward()
        self.actor_optimizer.step()
        with torch.no_grad():
            self.actor_targets.lerp_(self.actors.detach(), c.tau)
            self.critic_targets.lerp_(self.critics.detach(), c.tau)
        return info

    def _embeddings(self, actors: torch.Tensor, probe: torch.Tensor) -> torch.Tensor:
        """Actions of every actor on the same probe states, flattened: ``[M, P * act]``."""
        m = self.config.agents
        return self._act(actors, probe.expand(m, *probe.shape)).flatten(1)

    # -- one round of episodes -------------------------------------------------------------------
    def interact(self, env, max_episodes: int) -> tuple[Outcomes, dict]:
        """Run one episode on every row (at most ``max_episodes`` rows), learning as it goes.

        Returns the episodes' outcomes (for the run's metrics) and this round's metrics.
        """
        c = self.config
        m, e = c.agents, c.envs_per_agent
        rows = min(m * e, int(max_episodes))
        owners = torch.arange(m * e, device=self.device)[:rows] // e
        spec = env.spec
        started = time.perf_counter()
        env_time = 0.0
        state = env.reset(rows, device=self.device, generator=self.generator)
        obs = env.observe(state)
        returns = torch.zeros(rows, device=self.device)
        alive = torch.ones(rows, dtype=torch.bool, device=self.device)
        losses = []
        for _ in range(spec.episode_length):
            if self.steps < c.start_steps:
                action = torch.rand(rows, spec.action_size, generator=self.generator) * 2 - 1
                action = action.to(self.device)
            else:
                with torch.no_grad():
                    padded = torch.zeros(m * e, obs.shape[1], device=self.device)
                    padded[:rows] = obs
                    action = self._act(self.actors, padded.view(m, e, -1)).reshape(m * e, -1)
                    action = action[:rows]
                noise = torch.randn(action.shape, generator=self.generator).to(self.device)
                action = (action + c.exploration_noise * noise).clamp(-1, 1)
            t0 = time.perf_counter()
            state = env.step(state, action)
            next_obs = env.observe(state)
            reward = env.reward(state)
            env_time += time.perf_counter() - t0
            if not spec.final_reward_only:
                returns += torch.where(alive, reward, torch.zeros_like(reward))
            # time-limit ends are not terminal for bootstrapping (TD3's convention)
            if spec.can_terminate:  # only rows still running add a transition
                ended = env.done(state)
                live = alive.clone()
                self.buffer.add(
                    obs[live], action[live], reward[live], next_obs[live], (~ended[live]).float()
                )
                alive = alive & ~ended
            else:  # every row runs to the horizon: no masking (and no host sync)
                self.buffer.add(obs, action, reward, next_obs, torch.ones_like(reward))
            obs = next_obs
            self.steps += 1
            if self.steps >= c.start_steps and self.buffer.size >= c.batch_size:
                for _ in range(c.updates_per_step * e):
                    losses.append(self._update()["critic_loss"])
        if spec.final_reward_only:
            returns = env.reward(state)
        outcomes = Outcomes(
            fitness=returns.detach(),
            reward_area=env.reward_area(state),
            descriptor=env.descriptor(state),
            final_obs=env.observe(state),
        )
        agent_returns = torch.stack(
            [returns[owners == i].mean() for i in range(m) if bool((owners == i).any())]
        )
        info = self._round_metrics(agent_returns, outcomes, owners)
        if losses:
            info["critic_loss"] = float(torch.stack(losses).mean())
        info["env_time_s"] = env_time
        info["round_time_s"] = time.perf_counter() - started
        if rows == m * e and c.fixed_lambda is None:
            self.bandit.observe(float(agent_returns.mean()))
            self.lam = self.bandit.choose()
        info["lambda"] = self.lam
        self.rounds += 1
        return outcomes, info

    def _round_metrics(self, agent_returns, outcomes: Outcomes, owners) -> dict:
        c = self.config
        info = {
            "round": self.rounds,
            "timesteps": self.steps,
            "updates": self.updates,
            "population_reward_mean": float(agent_returns.mean()),
            "population_reward_max": float(agent_returns.max()),
        }
        if self.buffer.size == 0:
            return info
        probe, *_ = self.buffer.sample((c.probe_states,), self.generator)
        with torch.no_grad():
            embeddings = self._embeddings(self.actors, probe)
            distances = torch.cdist(embeddings, embeddings)
            off = ~torch.eye(c.agents, dtype=torch.bool, device=self.device)
            if c.agents > 1:
                info["embedding_distance_mean"] = float(distances[off].mean())
                info["embedding_distance_min"] = float(distances[off].min())
                info["log_det"] = float(diversity_log_det(embeddings, beta=c.beta))
        if len(owners) == c.agents * c.envs_per_agent:  # a full round: record the agents
            first = torch.arange(c.agents, device=self.device) * c.envs_per_agent
            self.population.clear()
            self.population.add(
                self.actors.detach(),
                agent_returns.detach(),
                embeddings,
                ground_truth=outcomes.descriptor[first].float(),
                reward_area=outcomes.reward_area[first],
            )
        return info

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Networks, targets, both Adams' moments, the filled replay buffer, RNG and bandit."""
        tensors = {
            "actors": self.actors.detach().clone(),
            "critics": self.critics.detach().clone(),
            "actor_targets": self.actor_targets.clone(),
            "critic_targets": self.critic_targets.clone(),
            "buffer": self.buffer.data[: self.buffer.size].clone()
            if self.buffer.size < self.buffer.capacity
            else self.buffer.data.clone(),
            "generator": self.generator.get_state(),
        }
        tensors.update(adam_tensors(self.actor_optimizer, self.actors, "actor_adam"))
        tensors.update(adam_tensors(self.critic_optimizer, self.critics, "critic_adam"))
        meta = {
            "config": asdict(self.config),
            "lambda": self.lam,
            "steps": self.steps,
            "updates": self.updates,
            "rounds": self.rounds,
            "buffer_position": self.buffer.position,
            "buffer_size": self.buffer.size,
            "bandit": self.bandit.state_dict(),
        }
        return {"tensors": tensors, "meta": meta}

    def load_state_dict(self, state: dict, archives: dict[str, Archive]) -> None:
        """Restore :meth:`state_dict`."""
        t, meta = state["tensors"], state["meta"]
        with torch.no_grad():
            self.actors.copy_(t["actors"])
            self.critics.copy_(t["critics"])
        self.actor_targets = t["actor_targets"].to(self.device).clone()
        self.critic_targets = t["critic_targets"].to(self.device).clone()
        self.buffer.data = t["buffer"].to(self.device).clone()
        self.buffer.position = int(meta["buffer_position"])
        self.buffer.size = int(meta["buffer_size"])
        self.generator.set_state(t["generator"])
        c = self.config
        self.actor_optimizer = restore_adam(self.actors, c.learning_rate, t, "actor_adam")
        self.critic_optimizer = restore_adam(self.critics, c.learning_rate, t, "critic_adam")
        self.lam = float(meta["lambda"])
        self.steps = int(meta["steps"])
        self.updates = int(meta["updates"])
        self.rounds = int(meta["rounds"])
        self.bandit.load_state_dict(meta["bandit"])
        self.population = archives["population"]
