"""EvoTorch's pieces inside qdtorch: DvD-ES's Adam against EvoTorch's functional Adam, and
SERENE's ``pgpe`` emitter (EvoTorch's functional PGPE batched over the emitters)."""

import pytest
import torch
from evotorch.algorithms.functional import adam, adam_ask, adam_tell, pgpe_tell

from qd.algorithms.serene import SereneConfig
from qd.emitters import EMITTER_TYPES, EmitterConfig, PGPEEmitters


def test_evotorch_adam_matches_dvd_adam_to_rounding_only():
    """DvD-ES steps its ``[M, D]`` agents with one ``torch.optim.Adam`` (ascent: grad = -g).
    EvoTorch's batched functional Adam is the same update (bias-corrected moments, epsilon
    added to the corrected root) but rounds differently from the first step, so DvD-ES keeps
    torch's (measured difference in docs/algorithms/dvd.md)."""
    generator = torch.Generator().manual_seed(0)
    init = torch.randn(5, 300, generator=generator) * 0.1
    agents = torch.nn.Parameter(init.clone())
    optimizer = torch.optim.Adam([agents], lr=0.05)  # as qd.algorithms.dvd.DvDES
    state = adam(center_init=init.clone(), center_learning_rate=0.05)
    worst = 0.0
    for step in range(500):
        gradient = torch.randn(5, 300, generator=generator) * (1 + step % 7)
        optimizer.zero_grad()
        agents.grad = -gradient
        optimizer.step()
        state = adam_tell(state, follow_grad=gradient)
        worst = max(worst, float((agents.detach() - adam_ask(state)).abs().max()))
    assert state.t.shape == (5,) and torch.equal(state.t, torch.full((5,), 500.0))
    assert 0 < worst < 1e-4, worst  # 5.2e-6 on agents of size ~6 after 500 steps
    scale = float(agents.detach().abs().max())
    assert worst / scale < 2e-6


def _toy(genomes: torch.Tensor) -> torch.Tensor:
    """Reward peaking at genome = 1 (rows ``[..., D]``)."""
    return -((genomes - 1) ** 2).sum(-1)


def test_pgpe_emitters_are_batched_evotorch_pgpe_and_improve():
    assert EMITTER_TYPES["pgpe"] is PGPEEmitters
    config = EmitterConfig()
    ancestors = torch.zeros(3, 8)
    sigmas = torch.tensor([0.1, 0.2, 0.3])
    batch = PGPEEmitters(ancestors, sigmas, config, torch.Generator().manual_seed(0))
    first = batch.initial()
    assert first.shape == (3, 6, 8)
    # mirrored pairs around each ancestor, scaled by its sigma
    assert torch.allclose(first[:, 0::2] + first[:, 1::2], torch.zeros(3, 3, 8), atol=1e-6)
    batch.tell_initial(_toy(first))
    # emitter 1 alone through EvoTorch's non-batched functional PGPE gives the same update
    one = PGPEEmitters(ancestors[1:2], sigmas[1:2], config, torch.Generator())
    single = pgpe_tell(one._pgpe_state(), first[1:2], _toy(first[1:2]))
    assert torch.allclose(single.optimizer_state.center, batch.center[1:2], atol=1e-6)
    for _ in range(30):
        offspring = batch.ask()
        batch.tell(offspring, _toy(offspring))
    assert batch.reward_history().shape == (3, 31, 6)
    assert (batch.best_rewards > _toy(ancestors)).all()
    assert (batch.center.mean(1) > 0.2).all()  # the centers moved towards 1
    assert batch.selected.tolist() == [list(range(6, 12))] * 3


def test_pgpe_emitters_state_and_cut_rows():
    config = EmitterConfig()
    batch = PGPEEmitters(torch.zeros(2, 4), torch.tensor([0.1, 0.5]), config, torch.Generator())
    batch.tell_initial(_toy(batch.initial()))
    rebuilt = PGPEEmitters.from_state(batch.state(), config, torch.Generator(), batch.generations)
    batch.generator.manual_seed(7)
    rebuilt.generator.manual_seed(7)
    assert torch.equal(batch.ask(), rebuilt.ask())
    # a cut generation (-inf padding) leaves that emitter's distribution unchanged
    offspring = rebuilt._samples.clone()
    rewards = _toy(offspring)
    rewards[1, 3:] = -torch.inf
    center = rebuilt.center.clone()
    rebuilt.tell(offspring, rewards)
    assert torch.equal(rebuilt.center[1], center[1]) and not torch.equal(
        rebuilt.center[0], center[0]
    )
    part = rebuilt.subset(torch.tensor([False, True]))
    assert len(part) == 1 and part.reward_history().shape == (1, 2, 6)
    assert not batch.should_stop().any()


def test_pgpe_emitter_config_checks():
    with pytest.raises(ValueError, match="emitter_mu must be even"):
        SereneConfig(emitter_type="pgpe", emitter_mu=5)
    with pytest.raises(ValueError, match="emitter_mu must be even"):
        PGPEEmitters(torch.zeros(1, 3), torch.ones(1), EmitterConfig(mu=3), torch.Generator())
