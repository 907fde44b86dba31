import pytest
import torch

import envs
from qd.metrics import Tracker


def test_coverage_counts_exploring_individuals_only():
    tracker = Tracker(envs.make("curling").spec.to_dict())
    explorers = torch.tensor([[-1.0, -1.0], [0.0, 0.0]])
    emitter_offspring = torch.tensor([[0.8, 0.8], [0.8, -0.8]])
    tracker.update(explorers, torch.zeros(2), torch.tensor([-1, -1]))
    tracker.update(
        emitter_offspring, torch.tensor([1.0, 0.5]), torch.tensor([0, 1]), exploring=False
    )
    assert tracker.coverage == pytest.approx(2 / 2500)  # the emitters' cells do not count
    assert tracker.max_reward.tolist() == [1.0, 0.5]  # their rewards do
    assert tracker.qd_score == 1.5  # and so does their fitness per cell
    restored = Tracker(envs.make("curling").spec.to_dict())
    restored.load_state_tensors(tracker.state_tensors())
    assert restored.coverage == tracker.coverage and restored.qd_score == tracker.qd_score
