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
    with pytest.raises(KeyError, match="unknown Gymnasium id 'NoSuchEnv-v0'.*gym:<module>:<id>"):
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


class _InfoCounter(gym.Env):
    """Position only in ``info``: x = 0.1 t, y = -0.1 t; pays 1 per step; an episode whose
    first action is positive after step 3 terminates."""

    observation_space = gym.spaces.Box(-1, 1, (1,))
    action_space = gym.spaces.Box(-1, 1, (1,))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, dtype=np.float32), {"x_position": 0.0, "y_position": 0.0}

    def step(self, action):
        self.t += 1
        x = 0.1 * self.t
        info = {"x_position": x, "y_position": -x, "pos": np.array([x, -x])}
        obs = np.array([self.t / 10], dtype=np.float32)
        return obs, 1.0, bool(self.t >= 3 and action[0] > 0), False, info


gym.register("qdtest/InfoCounter-v0", entry_point=_InfoCounter, max_episode_steps=7)


@pytest.mark.parametrize("rule", ["info[x_position,y_position]", "info[pos]"])
def test_info_descriptor_frozen_at_the_end(rule):
    env = envs.make(
        "gym:qdtest/InfoCounter-v0", descriptor=rule, descriptor_bounds=([-1, -1], [1, 1])
    )
    assert env.spec.descriptor_size == 2 and env.spec.options["descriptor"] == rule
    policy = SereneMLP((1, 5, 5, 1))
    genomes = torch.randn(16, policy.genome_size, generator=torch.Generator().manual_seed(1))
    out = LocalEvaluator(env, policy).evaluate(genomes)
    steps = out.fitness  # 1 per step taken: 3 when it stopped early, 7 otherwise
    assert set(steps.tolist()) <= {3.0, 4.0, 5.0, 6.0, 7.0} and len(set(steps.tolist())) > 1
    expected = torch.stack([0.1 * steps, -0.1 * steps], 1)
    torch.testing.assert_close(out.descriptor, expected)


def test_info_descriptor_errors():
    with pytest.raises(ValueError, match="needs descriptor_bounds"):
        envs.make("gym:qdtest/InfoCounter-v0", descriptor="info[x_position]")
    with pytest.raises(ValueError, match="info keys separated by commas"):
        envs.make("gym:qdtest/InfoCounter-v0", descriptor="info[]", descriptor_bounds=([0], [1]))
    policy = SereneMLP((1, 5, 5, 1))
    missing = envs.make(
        "gym:qdtest/InfoCounter-v0", descriptor="info[z_position]", descriptor_bounds=([0], [1])
    )
    with pytest.raises(ValueError, match="no key 'z_position' .*x_position"):
        LocalEvaluator(missing, policy).evaluate(torch.randn(2, policy.genome_size))
    short = envs.make(
        "gym:qdtest/InfoCounter-v0", descriptor="info[pos]", descriptor_bounds=([0], [1])
    )
    with pytest.raises(ValueError, match="gives 2 values per episode but descriptor_bounds have 1"):
        LocalEvaluator(short, policy).evaluate(torch.randn(2, policy.genome_size))


def test_vector_env_reused_and_rendered_only_for_frames(monkeypatch):
    made = []
    make_vec = gym.make_vec

    def counting(*args, **kwargs):
        made.append(kwargs.get("render_mode"))
        return make_vec(*args, **kwargs)

    monkeypatch.setattr(gym, "make_vec", counting)
    gym.register("qdtest/DotCount-v0", entry_point=_Dot, max_episode_steps=10)
    env = envs.make("gym:qdtest/DotCount-v0")
    policy = SereneMLP((2, 5, 5, 2))
    evaluator = LocalEvaluator(env, policy, max_batch=4)
    genomes = torch.randn(4, policy.genome_size, generator=torch.Generator().manual_seed(0))
    first = evaluator.evaluate(genomes)
    for _ in range(3):
        again = evaluator.evaluate(genomes)
    assert made == [None]  # one vector env for every batch of 4, without render_mode
    torch.testing.assert_close(again.descriptor, first.descriptor)
    evaluator.evaluate(torch.cat([genomes, genomes[:2]]))  # chunks of 4 and 2
    assert made == [None, None]
    evaluator.evaluate(genomes, frames=1)  # frames: a vector env that renders
    assert made == [None, None, "rgb_array"]
    env.close()


def test_big_descriptor_is_refused_with_the_grid_that_fits(tmp_path, capsys):
    class Nine(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (9,))
        action_space = gym.spaces.Box(-1, 1, (1,))

    gym.register("qdtest/Nine-v0", entry_point=Nine, max_episode_steps=5)
    with pytest.raises(ValueError, match=r"50\^9 = 1.95e\+15 cells .* grid_cells=4 or less"):
        envs.make("gym:qdtest/Nine-v0")
    assert envs.make("gym:qdtest/Nine-v0", grid_cells=4).spec.grid_shape == (4,) * 9
    out = tmp_path / "nine"
    assert main(["run", "ns", "--env", "gym:qdtest/Nine-v0", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "grid_cells=4" in err and not out.exists()


def test_gym_module_id_form(tmp_path, monkeypatch):
    (tmp_path / "qdtest_gymmod.py").write_text(
        "import gymnasium as gym\n"
        "from gymnasium.envs.classic_control import MountainCarEnv\n"
        "gym.register('QdModCar-v0', entry_point=MountainCarEnv, max_episode_steps=20)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    env = envs.make("gym:qdtest_gymmod:QdModCar-v0", descriptor="final_obs[0:1]")
    assert env.spec.name == "gym:qdtest_gymmod:QdModCar-v0" and env.spec.episode_length == 20
    with pytest.raises(ImportError, match="add --import qdtest_gymmod"):
        envs.build("gym:qdtest_gymmod:QdModCar-v0", {}, allow_import=())
