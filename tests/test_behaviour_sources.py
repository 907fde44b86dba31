"""``final_obs`` and ``signature`` on the authors' positions (default) or on observations.

Expected values are worked out by hand: a HardMaze robot driven straight at 0.5 units per step
along its start heading pi/4, a Curling ball that never moves, and an L-shaped path.
"""

import math

import pytest
import torch

import envs
from qd.behaviour import make_space
from qd.evaluation import LocalEvaluator, Outcomes
from qd.policies import SereneMLP, serene_sizes


def _outcomes(path=None, trajectory=None) -> Outcomes:
    n = 1
    return Outcomes(
        fitness=torch.zeros(n),
        reward_area=torch.full((n,), -1),
        descriptor=torch.tensor([[0.25, 0.75]]),
        final_obs=torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]]),
        path=path,
        trajectory=trajectory,
    )


def test_defaults_use_the_descriptor_and_obs_is_an_option():
    spec = envs.make("hardmaze").spec
    final = make_space("final_obs", spec)
    assert final.dim == 2 and final.source == "descriptor" and final.recordings == {}
    assert final.describe(_outcomes()).tolist() == [[0.25, 0.75]]
    obs = make_space("final_obs:source=obs", spec)
    assert obs.dim == 5 and obs.describe(_outcomes()).tolist() == [[1.0, 2.0, 3.0, 4.0, 5.0]]

    # L-shaped path (0, 0) -> (1, 0) -> (1, 1): level 1 = (1, 1); level 2: S11 = S22 = 1/2,
    # S12 = 1 (all of x before all of y), S21 = 0.
    sig = make_space("signature", spec)
    assert sig.recordings == {"path": spec.episode_length} and sig.dim == 6
    path = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]])
    assert sig.describe(_outcomes(path=path)).tolist() == [[1.0, 1.0, 0.5, 1.0, 0.0, 0.5]]
    # on observations: a straight move of (0, 2): level 2 = increment (x) increment / 2
    sig_obs = make_space("signature:source=obs,samples=2", spec)
    assert sig_obs.recordings == {"trajectory": 2} and sig_obs.dim == 5 + 25
    traj = torch.zeros(1, 2, 5)
    traj[0, 1, 1] = 2.0
    out = sig_obs.describe(_outcomes(trajectory=traj))[0]
    assert out[:5].tolist() == [0.0, 2.0, 0.0, 0.0, 0.0]
    assert out[5 + 1 * 5 + 1].item() == 2.0 and out[5:].abs().sum().item() == 2.0
    with pytest.raises(ValueError, match=r"needs recorded trajectories \(path=...\)"):
        sig.describe(_outcomes())


def test_bad_source_is_named():
    spec = envs.make("hardmaze").spec
    for bad in ("final_obs:source=ball", "signature:source=pixels"):
        with pytest.raises(ValueError, match="source must be one of descriptor, obs"):
            make_space(bad, spec)
    with pytest.raises(ValueError, match="bad final_obs option 'depth=2'"):
        make_space("final_obs:depth=2", spec)


def _straight_genomes(policy: SereneMLP, count: int) -> torch.Tensor:
    """Zero weights and output bias ln 3: every action is tanh(ln(3) / 2) = 0.5."""
    genomes = torch.zeros(count, policy.genome_size)
    genomes[:, -1] = math.log(3.0)
    return genomes


def test_hardmaze_positions_recorded_by_the_evaluator():
    env = envs.make("hardmaze", episode_length=10)
    policy = SereneMLP(serene_sizes(5, 2, env="hardmaze"))
    evaluator = LocalEvaluator(env, policy)
    genomes = _straight_genomes(policy, 2)
    # straight move of 0.5 along pi/4 per step: (60, 450) + k * 0.5 * (cos 45, sin 45)
    step = 0.5 * math.sqrt(0.5)
    final = make_space("final_obs", env.spec)
    out = evaluator.evaluate(genomes, **final.recordings)
    want = [(60 + 10 * step) / 600, (450 + 10 * step) / 600]
    assert final.describe(out)[0].tolist() == pytest.approx(want, abs=1e-6)
    # the path starts after step 1 (as the authors' traj[1:]): increment of 9 steps
    sig = make_space("signature:depth=2", env.spec)
    out = evaluator.evaluate(genomes, **sig.recordings)
    inc = 9 * step / 600
    want = [inc, inc] + [inc * inc / 2] * 4  # straight line: level 2 = inc (x) inc / 2
    assert sig.describe(out)[0].tolist() == pytest.approx(want, rel=1e-4)
    sig_obs = make_space("signature:source=obs", env.spec)
    assert sig_obs.describe(evaluator.evaluate(genomes, **sig_obs.recordings)).shape == (2, 30)


def test_curling_final_obs_is_the_ball():
    env = envs.make("curling", episode_length=5)
    policy = SereneMLP(serene_sizes(6, 2, env="curling"))
    # zero genome: zero joint commands, the arm never reaches the ball at (-0.5, 0.2)
    out = LocalEvaluator(env, policy).evaluate(torch.zeros(1, policy.genome_size))
    assert make_space("final_obs", env.spec).describe(out)[0].tolist() == pytest.approx([-0.5, 0.2])
    assert make_space("final_obs:source=obs", env.spec).dim == 6
