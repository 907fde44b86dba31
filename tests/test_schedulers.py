import math

import pytest

from qd.emitters.schedulers import (
    Alternating,
    DiscountedUCB,
    FixedProbability,
    TimeDecaying,
    chunk_reward,
)


def test_alternating():
    s = Alternating()
    assert [s.choose() for _ in range(5)] == ["explore", "exploit", "explore", "exploit", "explore"]


def test_fixed_probability_is_seeded_and_balanced():
    a, b = FixedProbability(0.5, seed=3), FixedProbability(0.5, seed=3)
    picks = [a.choose() for _ in range(2001)]
    assert picks == [b.choose() for _ in range(2001)]
    assert picks[0] == "explore"
    assert abs(picks[1:].count("explore") / 2000 - 0.5) < 0.05
    state = a.state_dict()
    c = FixedProbability(0.5, seed=99)
    c.load_state_dict(state)
    assert [a.choose() for _ in range(20)] == [c.choose() for _ in range(20)]
    with pytest.raises(ValueError):
        FixedProbability(1.5)


def test_time_decaying():
    s = TimeDecaying(total_budget=1000, seed=0)
    s.choose()
    s.update(reward=0, emitters_available=True, evaluations=250)
    assert s.p_explore == pytest.approx(0.75)
    s.update(reward=0, emitters_available=True, evaluations=1000)
    assert all(s.choose() == "exploit" for _ in range(20))


def test_ucb():
    s = DiscountedUCB()
    assert s.choose() == "explore"
    s.update(reward=-0.5, emitters_available=False, evaluations=1000)
    assert s.choose() == "explore"  # nothing to exploit yet
    s.update(reward=-math.tanh(2), emitters_available=True, evaluations=2000)
    assert s.choose() == "exploit"  # the untried arm comes first
    s.update(reward=math.tanh(1), emitters_available=True, evaluations=3000)
    assert s.pulls == [2, 1]
    assert s.values[0] == pytest.approx((-0.5 - math.tanh(2)) / 2)  # sample average
    assert s.values[1] == pytest.approx(math.tanh(1))
    assert s.choose() == "exploit"  # higher value, ucb bonuses similar


def test_chunk_reward():
    assert chunk_reward("explore", 2, 5, ran=True) == pytest.approx(-math.tanh(3))
    assert chunk_reward("exploit", 5, 3, ran=True) == pytest.approx(math.tanh(-2))
    assert chunk_reward("exploit", 0, 0, ran=False) == -1.0
