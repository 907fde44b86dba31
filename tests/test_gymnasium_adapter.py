import gymnasium as gym
import numpy as np
import pytest
import torch

import envs
from qd.cli import main
from qd.evaluation import LocalEvaluator
from qd.policies import SereneMLP


def _mountain(**kw):
    return envs.make(
        "gym:MountainCarContinuous-v0", descriptor="final_obs[0:1]", episode_length=120, **kw
    )


def test_spec_and_shapes():
    env = _mountain()
    spec = env.spec
    assert (spec.obs_size, spec.action_size, spec.descriptor_size) == (2, 1, 1)
    assert spec.descriptor_low[0] == pytest.approx(-1.2) and spec.grid_shape == (50,)
    policy = SereneMLP((2, 5, 5, 1))
    genomes = torch.randn(6, policy.genome_size, generator=torch.Generator().manual_seed(0))
    out = LocalEvaluator(env, policy).evaluate(genomes, trajectory=4)
    assert out.fitness.shape == (6,) and out.descriptor.shape == (6, 1)
    assert out.trajectory.shape == (6, 4, 2) and (out.reward_area == -1).all()
    torch.testing.assert_close(out.descriptor, out.final_obs[:, :1])


def test_seeding_same_and_per_episode():
    policy = SereneMLP((2, 5, 5, 1))
    genome = torch.randn(1, policy.genome_size).repeat(4, 1)  # one policy, 4 episodes
    same = LocalEvaluator(_mountain(), policy, seed=3).evaluate(genome)
    assert torch.equal(same.descriptor, same.descriptor[:1].expand(4, 1))
    again = LocalEvaluator(_mountain(), policy, seed=3).evaluate(genome)
    assert torch.equal(same.descriptor, again.descriptor)
    varied = LocalEvaluator(_mountain(seeding="per_episode"), policy, seed=3).evaluate(genome)
    assert len(set(varied.descriptor[:, 0].tolist())) > 1  # different start positions


def test_discrete_actions_and_early_termination():
    env = envs.make(
        "gym:CartPole-v1", descriptor="final_obs[0:1]", descriptor_bounds=([-4.8], [4.8])
    )
    assert env.spec.action_size == 2 and env.spec.can_terminate
    policy = SereneMLP((4, 5, 5, 2))
    out = LocalEvaluator(env, policy).evaluate(torch.randn(5, policy.genome_size))
    # CartPole pays 1 per step until the pole falls: returns are whole step counts <= 500
    assert (out.fitness >= 1).all() and (out.fitness <= 500).all()
    assert torch.equal(out.fitness, out.fitness.round())


def test_errors_name_the_fix():
    with pytest.raises(KeyError, match="unknown Gymnasium id 'NoSuchEnv-v0'"):
        envs.make("gym:NoSuchEnv-v0")
    with pytest.raises(ValueError, match="descriptor_bounds"):
        envs.make("gym:CartPole-v1")  # infinite observation bounds
    with pytest.raises(ValueError, match="unsupported observation space"):
        envs.make("gym:Blackjack-v1")

    class MultiActions(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (2,))
        action_space = gym.spaces.MultiDiscrete([2, 3])

    gym.register("qdtest/MultiActions-v0", entry_point=MultiActions)
    with pytest.raises(ValueError, match="unsupported action space"):
        envs.make("gym:qdtest/MultiActions-v0")
    try:
        import mujoco  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="mujoco"):
            envs.make("gym:Swimmer-v5")


def test_ns_end_to_end_from_cli(tmp_path, capsys):
    out = tmp_path / "mc"
    assert (
        main(
            [
                "run",
                "ns",
                "--env",
                "gym:MountainCarContinuous-v0",
                "--set",
                "env.descriptor=final_obs[0:1]",
                "--set",
                "env.episode_length=100",
                "--budget",
                "500",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["inspect", str(out), "--json"]) == 0
    import json

    info = json.loads(capsys.readouterr().out)
    assert info["evaluations"] == 500 and info["coverage"] > 0 and info["max_reward"] == []
    assert np.isfinite(info["qd_score"])


class _Dot(gym.Env):
    """Tiny env with an rgb_array render (no pygame needed)."""

    metadata = {"render_modes": ["rgb_array"]}
    observation_space = gym.spaces.Box(-1, 1, (2,))
    action_space = gym.spaces.Box(-1, 1, (2,))

    def __init__(self, render_mode=None):
        self.render_mode = render_mode
        self.pos = np.zeros(2, dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = np.zeros(2, dtype=np.float32)
        return self.pos.copy(), {}

    def step(self, action):
        self.pos = np.clip(self.pos + 0.1 * np.asarray(action, dtype=np.float32), -1, 1)
        return self.pos.copy(), 0.0, False, False, {}

    def render(self):
        img = np.zeros((32, 48, 3), dtype=np.uint8)
        img[:, : int(24 + 23 * self.pos[0])] = 255
        return img


def test_renders_from_rgb_array():
    gym.register("qdtest/Dot-v0", entry_point=_Dot, max_episode_steps=10)
    env = envs.make("gym:qdtest/Dot-v0")
    policy = SereneMLP((2, 5, 5, 2))
    out = LocalEvaluator(env, policy).evaluate(torch.randn(3, policy.genome_size), frames=2)
    assert out.frames.shape == (3, 2, 64, 64, 3) and out.frames.dtype == torch.uint8
    # the white share of the frame follows the final x position
    white = out.frames[:, -1].float().mean((1, 2, 3)) / 255
    expected = (24 + 23 * out.final_obs[:, 0]).floor() / 48
    torch.testing.assert_close(white, expected, atol=0.03, rtol=0)
