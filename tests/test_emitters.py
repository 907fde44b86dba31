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
    others = torch.tensor([[0.0, 0.0], [3.0, 4.0], [5.0, 5.0]])  # rows 0 and 2: the ancestors
    sigma = initial_sigma(ancestors, others, self_index=torch.tensor([0, 2]))
    assert sigma[0].item() == pytest.approx(5 / 3)  # nearest other: (3, 4) at distance 5
    assert sigma[1].item() == pytest.approx((4 + 1) ** 0.5 / 3)  # (3, 4) at sqrt(5)
    alone = initial_sigma(torch.zeros(1, 2), torch.zeros(1, 2), self_index=torch.tensor([0]))
    assert alone.item() == pytest.approx(0.05)
    # another genome equal to the ancestor: distance 0, so the fallback (the authors' rule)
    twin = torch.tensor([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    assert initial_sigma(torch.zeros(1, 2), twin, self_index=[0]).item() == pytest.approx(0.05)
    # an ancestor that is not among the others (-1): every row counts
    outside = initial_sigma(torch.zeros(1, 2), torch.tensor([[0.0, 3.0]]), self_index=[-1])
    assert outside.item() == pytest.approx(1.0)


def test_improvement_and_window():
    history = torch.tensor([[0.1, 0.1, 0.1, 0.2, 0.4, 0.6], [0.5, 0.5, 0.5, 0.2, 0.2, 0.2]])
    assert improvement(history).tolist() == pytest.approx([0.3, 0.0])
    # [E, G, k]: the means run over every reward of the first / last 3 generations
    population = torch.zeros(1, 6, 6)
    population[0, 3:, 0] = 0.6  # one parent of six improved in the last 3 generations
    assert improvement(population).item() == pytest.approx(0.1)
    padded = population.clone()
    padded[0, -1, 1:] = -float("inf")  # rows cut by the budget do not count
    assert improvement(padded).item() == pytest.approx((0.6 * 3) / 13)
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
    # [E, G, k]: medians and maxima over all rewards of the 20 generations
    better_best = torch.zeros(1, 60, 6)
    better_best[0, 40:, 0] = 1.0  # the best parent improved, the median did not
    assert stagnated(better_best, window).item()
    both = torch.zeros(1, 60, 6)
    both[0, 40:, :4] = 1.0
    assert not stagnated(both, window).item()


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
    history = emitters.reward_history()
    assert history.shape == (3, 21, 6)
    # the history holds the parents' rewards after each selection: never worse under elitism
    assert (history.max(2).values.diff(dim=1) >= 0).all()
    assert (history.mean(2).diff(dim=1) >= 0).all()
    assert torch.equal(history[:, -1], emitters.parent_rewards)
    emitters.select(torch.tensor([True, False, True]))
    assert len(emitters) == 2 and emitters.reward_history().shape == (2, 21, 6)


def test_elitist_keeps_the_mu_best():
    gen = torch.Generator().manual_seed(1)
    emitters = ElitistEmitters(torch.zeros(1, 2), torch.tensor([1.0]), EmitterConfig(), gen)
    emitters.tell_initial(torch.arange(6.0)[None])
    assert emitters.selected.tolist() == [[0, 1, 2, 3, 4, 5]]
    offspring = emitters.ask()
    rewards = torch.arange(12.0)[None] - 3  # -3 .. 8
    emitters.tell(offspring, rewards)
    assert emitters.parent_rewards[0].tolist() == [8.0, 7.0, 6.0, 5.0, 5.0, 4.0]
    # rows of [parents (0-5); offspring (6-17)]: offspring i has reward i - 3; on the ties
    # (5: parent 5 / offspring 8, 4: parent 4 / offspring 7) the newer row goes first
    assert emitters.selected.tolist() == [[17, 16, 15, 14, 5, 13]]


def test_elitist_tie_break_is_newest_first():
    """On a zero-reward plateau the newest offspring replace the parents (neutral drift)."""
    gen = torch.Generator().manual_seed(4)
    emitters = ElitistEmitters(torch.zeros(1, 2), torch.tensor([1.0]), EmitterConfig(), gen)
    emitters.tell_initial(torch.zeros(1, 6))
    offspring = emitters.ask()
    emitters.tell(offspring, torch.zeros(1, 12))
    assert emitters.selected.tolist() == [[17, 16, 15, 14, 13, 12]]
    assert torch.equal(emitters.parents[0], offspring[0].flip(0)[:6])
    # a better parent still beats equal newer ones: reward 1 at parent row 2 stays first
    again = emitters.ask()
    emitters.parent_rewards[0, 2] = 1.0
    emitters.tell(again, torch.zeros(1, 12))
    assert emitters.selected.tolist() == [[2, 17, 16, 15, 14, 13]]


def test_novelty_selecting_elitist_keeps_the_most_novel():
    gen = torch.Generator().manual_seed(2)
    # novelty = distance of the descriptor from the origin
    emitters = ElitistEmitters(
        torch.zeros(1, 2),
        torch.tensor([1.0]),
        EmitterConfig(),
        gen,
        novelty=lambda m: m.norm(dim=1),
    )
    first = emitters.initial()
    emitters.tell_initial(torch.zeros(1, 6), measures=torch.zeros(1, 6, 1))
    offspring = emitters.ask()
    rewards = torch.arange(12.0)[None]  # reward rises with the index...
    measures = (11 - torch.arange(12.0)).view(1, 12, 1)  # ...novelty falls with it
    emitters.tell(offspring, rewards, measures)
    # parents = the six most novel offspring (indices 0..5), not the six most rewarding
    assert torch.equal(emitters.parents[0], offspring[0, :6])
    assert emitters.parent_rewards[0].tolist() == [0, 1, 2, 3, 4, 5]
    # the best individual is tracked by reward whatever the selection
    genome, reward = emitters.best()
    assert reward.item() == 11 and torch.equal(genome[0], offspring[0, 11])
    assert first.shape == (1, 6, 2)


def _sphere(x, target=1.0):
    return -(x - target).pow(2).sum(-1)


def test_cma_emitters_climb_and_checkpoint_exactly():
    from qd.emitters import CMAEmitters

    gen = torch.Generator().manual_seed(3)
    config = EmitterConfig()
    emitters = CMAEmitters(torch.zeros(3, 5), torch.tensor([0.3, 0.3, 0.3]), config, gen)
    first = emitters.initial()
    assert first.shape == (3, 6, 5)
    emitters.tell_initial(_sphere(first))
    start = emitters.best()[1].clone()
    for _ in range(60):
        offspring = emitters.ask()
        assert offspring.shape == (3, 6, 5) and offspring.abs().max() <= 5
        emitters.tell(offspring, _sphere(offspring))
    assert (emitters.best()[1] > start + 1.0).all()  # from -5 to near 0
    assert emitters.reward_history().shape == (3, 61, 6)
    # a state round trip continues exactly like the original (means, covariances, numpy RNG)
    copy = CMAEmitters.from_state(emitters.state(), config, gen, emitters.generations)
    a, b = emitters.ask(), copy.ask()
    assert torch.equal(a, b)
    single = emitters.subset(torch.tensor([False, True, False]))
    assert len(single) == 1 and torch.equal(single.best()[0][0], emitters.best()[0][1])


def test_cma_stop_test_of_the_authors_cmaes():
    """cmaes 0.6.0's should_stop on hand-set CMA-ES states (n = 2, population 6)."""
    import numpy as np
    from ribs.emitters.opt import CMAEvolutionStrategy

    from qd.emitters.cma import cma_should_stop

    def fresh():
        opt = CMAEvolutionStrategy(sigma0=0.3, solution_dim=2, batch_size=6, seed=0)
        opt.reset(np.array([1.0, 1.0]))
        return opt

    # flat rewards: stop once more than 10 + ceil(30 * 2 / 6) = 20 generations span < 1e-12
    flat = torch.zeros(21, 6)
    assert not cma_should_stop(fresh(), 0.3, flat[:20])
    assert cma_should_stop(fresh(), 0.3, flat)
    varied = flat.clone()
    varied[3, 0] = 1e-6  # a reward inside the last 20 generations differs
    assert not cma_should_stop(fresh(), 0.3, varied)
    varied[3, 0], varied[0, 0] = 0.0, 1.0  # only generation 0 differs: outside the window
    assert cma_should_stop(fresh(), 0.3, varied)
    short = torch.arange(4 * 6.0).view(4, 6)
    opt = fresh()
    opt.sigma = 2e4  # sigma * max(D) = 2e4 > 1e4 (divergence)
    assert cma_should_stop(opt, 0.3, short)
    opt = fresh()
    opt.sigma = 1e-17  # 1 + 0.2 * 1e-17 == 1 in float64: no-effect coordinate
    assert cma_should_stop(opt, 0.3, short)
    opt = fresh()
    opt.cov.eigenvalues = np.array([1.0, 1e-30])  # D = (1, 1e-15): conditioning 1e15 > 1e14
    assert cma_should_stop(opt, 0.3, short)
    assert not cma_should_stop(fresh(), 0.3, short)  # a fresh CMA-ES goes on


def test_pool_rows_join_and_advance_on_their_own():
    """A pool's rows start at different times and advance only when asked and told."""
    gen = torch.Generator().manual_seed(0)
    config = EmitterConfig()
    pool = ElitistEmitters(torch.zeros(2, 3), torch.tensor([0.1, 0.2]), config, gen)
    pool.tell_initial(torch.zeros(2, 6))
    late = ElitistEmitters(torch.ones(1, 3), torch.tensor([0.3]), config, gen)
    late.tell_initial(torch.ones(1, 6))
    pool.append(late)
    idle = pool.parents[1].clone()
    rows = torch.tensor([0, 2])
    for _ in range(10):
        offspring = pool.ask(rows)  # one draw for both rows
        assert offspring.shape == (2, 12, 3)
        best = pool.tell(offspring, torch.arange(12.0).expand(2, -1), rows=rows)
        assert best.tolist() == [11.0, 11.0] and pool.selected.shape == (2, 6)
    assert pool.lengths.tolist() == [11, 1, 11] and pool.generations == 11
    assert torch.equal(pool.parents[1], idle)  # row 1 was not told
    history = pool.reward_history()
    assert history.shape == (3, 11, 6) and history[1, 1:].isnan().all()
    assert pool.reward_history(torch.tensor([1])).shape == (1, 1, 6)
    # the stop rule reads each row's own last W generations (row 1 is too young)
    assert stagnated(history, 5, lengths=pool.lengths).tolist() == [True, False, True]
    pool.select(torch.tensor([False, True, True]))
    assert pool.lengths.tolist() == [1, 11] and torch.equal(pool.parents[0], idle)
    again = ElitistEmitters.from_state(pool.state(), config, gen, pool.generations)
    assert again.lengths.tolist() == [1, 11]
    assert torch.equal(again.reward_history()[1], pool.reward_history()[1])
