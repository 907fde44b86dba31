import pytest
import torch

import envs
from qd.evaluation import LocalEvaluator, Outcomes, sample_steps
from qd.policies import SereneMLP


@pytest.fixture(scope="module")
def short_maze():
    return envs.make("hardmaze", episode_length=400)


def _genomes(n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 63, generator=gen).clamp(-5, 5)


def test_batch_equals_individual(short_maze):
    ev = LocalEvaluator(short_maze, SereneMLP((5, 5, 5, 2)))
    g = _genomes(12)
    together = ev.evaluate(g)
    for i in range(12):
        alone = ev.evaluate(g[i : i + 1])
        assert torch.equal(alone.descriptor[0], together.descriptor[i])
        assert torch.equal(alone.fitness[0], together.fitness[i])
        assert torch.equal(alone.final_obs[0], together.final_obs[i])


def test_chunking_equals_one_batch(short_maze):
    g = _genomes(10)
    big = LocalEvaluator(short_maze, SereneMLP((5, 5, 5, 2))).evaluate(g)
    small = LocalEvaluator(short_maze, SereneMLP((5, 5, 5, 2)), max_batch=3).evaluate(g)
    assert torch.equal(big.descriptor, small.descriptor)
    assert torch.equal(big.reward_area, small.reward_area)


def test_determinism(short_maze):
    g = _genomes(32, seed=3)
    a = LocalEvaluator(short_maze, SereneMLP((5, 5, 5, 2)), seed=1).evaluate(g)
    b = LocalEvaluator(short_maze, SereneMLP((5, 5, 5, 2)), seed=1).evaluate(g)
    for name in ("fitness", "reward_area", "descriptor", "final_obs"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.descriptor[0], a.descriptor[1])  # policies really differ


def test_recordings(short_maze):
    ev = LocalEvaluator(short_maze, SereneMLP((5, 5, 5, 2)))
    out = ev.evaluate(_genomes(4), frames=2, trajectory=5)
    assert out.frames.shape == (4, 2, 64, 64, 3) and out.frames.dtype == torch.uint8
    assert out.trajectory.shape == (4, 5, 5)
    torch.testing.assert_close(out.trajectory[:, -1], out.final_obs)
    assert sample_steps(400, 5) == [80, 160, 240, 320, 400]
    assert ev.evaluations == 4


def test_outcomes_select_and_cat(short_maze):
    out = LocalEvaluator(short_maze, SereneMLP((5, 5, 5, 2))).evaluate(_genomes(6))
    both = Outcomes.cat([out.select(slice(0, 2)), out.select(slice(2, 6))])
    assert torch.equal(both.descriptor, out.descriptor) and len(both) == 6


def test_bad_inputs(short_maze):
    ev = LocalEvaluator(short_maze, SereneMLP((5, 5, 5, 2)))
    with pytest.raises(ValueError, match="63"):
        ev.evaluate(torch.zeros(2, 10))
    with pytest.raises(ValueError, match="NaN"):
        ev.evaluate(torch.full((2, 63), float("nan")))
    with pytest.raises(ValueError, match="device"):
        LocalEvaluator(short_maze, SereneMLP((5, 5, 5, 2)), device="gpu0")
    with pytest.raises(ValueError, match="policy sizes"):
        LocalEvaluator(short_maze, SereneMLP((4, 5, 2)))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            LocalEvaluator(short_maze, SereneMLP((5, 5, 5, 2)), device="cuda")
