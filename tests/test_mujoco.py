"""Gymnasium's MuJoCo tasks through the adapter: descriptors from ``info`` and from the final
observation (skipped without ``pip install 'qdtorch[mujoco]'``)."""

import json

import numpy as np
import pytest
import torch

import envs
from qd.algorithms import policy_for
from qd.cli import main
from qd.evaluation import LocalEvaluator

pytest.importorskip("mujoco")
gym = pytest.importorskip("gymnasium")

XY = "info[x_position,y_position]"
BOUNDS = [[-5, -5], [5, 5]]


def _still(name: str, **options):
    """Descriptors and returns of 3 episodes of zero actions (zero genomes) on ``name``."""
    env = envs.make(name, **options)
    policy = policy_for("ns", env.spec, None)
    out = LocalEvaluator(env, policy, seed=3).evaluate(torch.zeros(3, policy.genome_size))
    env.close()
    return out


def test_ant_info_xy_equals_the_final_observation_xy():
    """Ant-v5's (x, y) from ``info`` and from the observation (positions kept in it) agree."""
    info = _still("gym:Ant-v5", descriptor=XY, descriptor_bounds=BOUNDS, episode_length=15)
    obs = _still(
        "gym:Ant-v5",
        descriptor="final_obs[0:2]",
        descriptor_bounds=BOUNDS,
        episode_length=15,
        make_kwargs={"exclude_current_positions_from_observation": False},
    )
    assert info.descriptor.shape == (3, 2)
    assert torch.allclose(info.descriptor, obs.descriptor, atol=1e-6)
    assert info.descriptor.abs().max() > 1e-3  # the reset noise moved it off (0, 0)


def test_terminated_ant_keeps_its_last_position():
    """An Ant that falls out of its healthy z range keeps the (x, y) of its last step."""
    kwargs = {"healthy_z_range": [0.2, 0.6]}  # the torso starts at 0.75: ends at the 1st step
    out = _still(
        "gym:Ant-v5", descriptor=XY, descriptor_bounds=BOUNDS, episode_length=20, make_kwargs=kwargs
    )
    single = gym.make("Ant-v5", **kwargs)
    obs, _ = single.reset(seed=int(_reset_seed(3)))
    steps = 0
    while True:
        obs, _, terminated, truncated, info = single.step(np.zeros(8, dtype=np.float32))
        steps += 1
        if terminated or truncated:
            break
    single.close()
    assert steps < 20
    expected = torch.tensor([info["x_position"], info["y_position"]], dtype=torch.float32)
    assert torch.allclose(out.descriptor, expected.expand(3, 2), atol=1e-6)


def _reset_seed(seed: int) -> int:
    """The Gymnasium reset seed of an evaluator seeded with ``seed`` (qd.rollout.run_episode)."""
    gen = torch.Generator().manual_seed(seed)
    return int(torch.randint(0, 2**31 - 1, (1,), generator=gen))


def test_swimmer_ns_run_with_xy_descriptor(tmp_path, capsys):
    out = tmp_path / "swim"
    args = ["run", "ns", "--env", "gym:Swimmer-v5", "--budget", "60", "--out", str(out)]
    args += ["--set", f"env.descriptor={XY}", "--set", "env.descriptor_bounds=[[-2,-2],[2,2]]"]
    args += ["--set", "env.episode_length=20", "--set", "pop_size=20", "--no-progress"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["inspect", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["evaluations"] == 60 and info["coverage"] > 0


def test_missing_descriptor_bounds_names_the_info_keys():
    with pytest.raises(ValueError, match=r"info\[x_position,y_position\]"):
        envs.make("gym:Ant-v5")  # final_obs has infinite bounds
