import pytest
import torch

from qd.emitters import (
    ElitistEmitters,
    EmitterConfig,
    improvement,
    initial_sigma,
    stagnated,
    stagnation_window,
)


def test_sigma_rule():
    ancestors = torch.tensor([[0.0, 0.0], [5.0, 5.0]])
    others = torch.tensor([[0.0, 0.0], [3.0, 4.0], [5.0, 5.0]])  # includes the ancestors
    sigma = initial_sigma(ancestors, others)
    assert sigma[0].item() == pytest.approx(5 / 3)  # nearest other: (3, 4)
    assert sigma[1].item() == pytest.approx((4 + 1) ** 0.5 / 3)
    alone = initial_sigma(torch.zeros(1, 2), torch.zeros(1, 2))
    assert alone.item() == pytest.approx(0.05)


def test_improvement_and_window():
    history = torch.tensor([[0.1, 0.1, 0.1, 0.2, 0.4, 0.6], [0.5, 0.5, 0.5, 0.2, 0.2, 0.2]])
    assert improvement(history).tolist() == pytest.approx([0.3, 0.0])
    assert stagnation_window(63, 6) == int(20 * 63 / 6 + 120) == 330


def test_stagnation_rule():
    window = 40
    rising = torch.linspace(0, 1, 60)[None]
    flat = torch.ones(1, 60)
    peak_early = torch.cat([torch.ones(1, 30) * 2, torch.ones(1, 30)], 1)
    young = torch.zeros(1, 40)
    assert not stagnated(rising, window).item()
    assert stagnated(flat, window).item()  # median and max equal: no improvement
    assert stagnated(peak_early, window).item()
    assert not stagnated(young, window).item()  # only runs once more than W generations ran


def test_batched_elitist_step():
    gen = torch.Generator().manual_seed(0)
    config = EmitterConfig()
    ancestors = torch.zeros(3, 4)
    emitters = ElitistEmitters(ancestors, torch.tensor([0.1, 0.2, 0.3]), config, gen)
    first = emitters.initial()
    assert first.shape == (3, 6, 4)
    # mutation scale follows each emitter's sigma
    spread = first.std(dim=(1, 2))
    assert spread[0] < spread[2]
    emitters.tell_initial(-first.pow(2).sum(-1))
    best_before = emitters.best()[1].clone()
    for _ in range(20):
        offspring = emitters.ask()
        assert offspring.shape == (3, 12, 4) and offspring.abs().max() <= 5
        emitters.tell(offspring, -offspring.pow(2).sum(-1))
    best_after = emitters.best()[1]
    assert (best_after >= best_before).all()  # elitist: never worse
    assert emitters.reward_history().shape == (3, 21)
    emitters.select(torch.tensor([True, False, True]))
    assert len(emitters) == 2 and emitters.reward_history().shape == (2, 21)


def test_elitist_keeps_the_mu_best():
    gen = torch.Generator().manual_seed(1)
    emitters = ElitistEmitters(torch.zeros(1, 2), torch.tensor([1.0]), EmitterConfig(), gen)
    emitters.tell_initial(torch.arange(6.0)[None])
    offspring = emitters.ask()
    rewards = torch.arange(12.0)[None] - 3  # -3 .. 8
    emitters.tell(offspring, rewards)
    assert emitters.parent_rewards[0].tolist() == [8.0, 7.0, 6.0, 5.0, 5.0, 4.0]
