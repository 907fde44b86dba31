"""A fixed-seed SERENE run on a tiny test-local env, hashed (tests/data/serene_reference.json).

The env lives here, not in ``envs/``, so that fixes to the built-in envs cannot change the
reference. ``python tests/serene_reference.py`` rewrites the JSON (only when a documented
change of SERENE's rules is meant to change results). Last rewritten for the issue-17 emitter
rules (docs/algorithms/serene.md, "Differences from the authors' code").
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from envs.base import EnvSpec, goal_area, goal_reward
from qd.algorithms.serene import Serene, SereneConfig
from qd.archive import Archive
from qd.evaluation import LocalEvaluator
from qd.policies import SereneMLP

REFERENCE = Path(__file__).parent / "data" / "serene_reference.json"
GOALS = torch.tensor([[0.7, 0.7], [-0.6, 0.2]])
RADII = torch.tensor([0.3, 0.15])


@dataclass
class _State:
    pos: torch.Tensor
    t: int


class PointGoals:
    """A point pushed by its actions for 20 steps; two goals with the papers' sparse reward."""

    def __init__(self) -> None:
        self.spec = EnvSpec(
            name="point-goals",
            obs_size=2,
            action_size=2,
            episode_length=20,
            descriptor_size=2,
            descriptor_low=(-1.0, -1.0),
            descriptor_high=(1.0, 1.0),
            grid_shape=(20, 20),
            reward_areas=2,
        )

    def reset(self, batch_size, *, device="cpu", generator=None):
        return _State(torch.zeros(batch_size, 2, device=device), 0)

    def step(self, state, actions):
        return _State((state.pos + 0.08 * actions.clamp(-1, 1)).clamp(-1, 1), state.t + 1)

    def observe(self, state):
        return state.pos

    def _dist(self, state):
        return (state.pos[:, None] - GOALS.to(state.pos)).norm(dim=-1)  # batch invariant

    def reward(self, state):
        finished = torch.ones(len(state.pos), dtype=torch.bool, device=state.pos.device)
        return goal_reward(self._dist(state), RADII.to(state.pos), finished)

    def reward_area(self, state):
        return goal_area(self._dist(state), RADII.to(state.pos))

    def descriptor(self, state):
        return state.pos

    def done(self, state):
        return torch.zeros(len(state.pos), dtype=torch.bool, device=state.pos.device)

    def render(self, state):
        return torch.zeros(len(state.pos), 8, 8, 3, dtype=torch.uint8)


def run_reference(tmp: Path, *, budget: int = 6000, checkpoint_at: int = 3000) -> dict:
    """Run SERENE (chunks of 500) with a checkpoint round trip, on one torch thread (float
    reductions round differently with other thread counts); hashes of its archives."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(tmp, budget, checkpoint_at)
    finally:
        torch.set_num_threads(threads)


def _run(tmp: Path, budget: int, checkpoint_at: int) -> dict:
    env = PointGoals()
    policy = SereneMLP((2, 2))
    evaluator = LocalEvaluator(env, policy)
    config = SereneConfig(chunk_size=500, budget=budget)
    kwargs = dict(
        genome_size=policy.genome_size, measure_dim=2, env_spec=env.spec.to_dict(), seed=7
    )
    algo = Serene(config, **kwargs)
    algo.window = 8  # stagnation window cut from 140 so that emitters stop within the budget
    done, resumed = 0, False
    while done < budget:
        genomes = algo.ask(budget - done)
        outcomes = evaluator.evaluate(genomes)
        algo.tell(genomes, outcomes, outcomes.descriptor)
        done += len(genomes)
        if not resumed and done >= checkpoint_at and algo.ready_for_checkpoint():
            state = algo.state_dict()
            paths = {n: a.save(tmp / f"{n}.safetensors") for n, a in algo.archives.items()}
            algo = Serene(config, **kwargs)
            algo.window = 8
            algo.load_state_dict(state, {n: Archive.load(p) for n, p in paths.items()})
            resumed = True
    hashes = {}
    for name in ("novelty", "population", "reward"):
        archive = algo.archives[name]
        for field in ("solution", "objective", "measures", "reward_area"):
            data = archive.field(field).contiguous().cpu().numpy().tobytes()
            hashes[f"{name}.{field}"] = hashlib.sha256(data).hexdigest()
        hashes[f"{name}.rows"] = len(archive)
    hashes["emitter_evaluations"] = algo.emitter_evaluations
    hashes["active_emitters"] = len(algo.emitters)
    return hashes


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        REFERENCE.write_text(json.dumps(run_reference(Path(tmp)), indent=2) + "\n")
    print(REFERENCE.read_text())
