import json
import shutil

import torch

import envs
from qd.algorithms.serene import Serene, SereneConfig, pareto_front
from qd.archive import Archive
from qd.cli import main
from qd.evaluation import LocalEvaluator
from qd.policies import SereneMLP
from qd.run import RunConfig, start


def test_pareto_front():
    points = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.4, 0.4], [1.0, 0.0]])
    assert sorted(pareto_front(points).tolist()) == [0, 1, 2, 4]


def _loop(budget, seed=0):
    env = envs.make("curling")
    policy = SereneMLP((6, 5, 5, 5, 2))
    serene = Serene(
        SereneConfig(budget=budget),
        genome_size=policy.genome_size,
        measure_dim=2,
        env_spec=env.spec.to_dict(),
        seed=seed,
    )
    evaluator = LocalEvaluator(env, policy)
    used, phases = 0, []
    while used < budget:
        genomes = serene.ask(budget - used)
        out = evaluator.evaluate(genomes)
        info = serene.tell(genomes, out, out.descriptor)
        used += len(genomes)
        phases.append((used, info["phase"], len(genomes)))
    return serene, phases, used


def test_chunks_bootstrap_and_budget():
    serene, phases, used = _loop(2500)
    assert used == 2500  # the last batch is cut to the budget
    kinds = [p[1] for p in phases]
    first_exploit = kinds.index("bootstrap")
    # the first chunk is exploration (100 + 5 x 200 = 1,100 evaluations), then exploitation
    assert phases[first_exploit - 1][0] == 1100
    # bootstrapping: n candidates x 6, then 5 generations of n x 12, all in one batch
    boot = [p[2] for p in phases if p[1] == "bootstrap"]
    n = boot[0] // 6
    assert boot[:6] == [6 * n] + [12 * n] * 5 and 6 * n * 11 <= 1000 - 1000 // 3 + 66
    assert len(serene.reward_archive) > 0
    assert all(p[2] == 12 for p in phases if p[1] == "run")


def test_serene_run_resumes_exactly(tmp_path):
    def config(name):
        return RunConfig(
            algorithm="serene",
            env="curling",
            out=str(tmp_path / name),
            budget=2600,
            checkpoint_every=1000,
        )

    ref = start(config("ref"), progress=False)
    cut = start(config("cut"), progress=False)
    checkpoints = sorted((cut / "checkpoints").iterdir())
    assert len(checkpoints) == 2
    shutil.rmtree(cut / "archive")
    shutil.rmtree(checkpoints[-1])  # resume from the first (chunk-boundary) checkpoint
    assert main(["run", "--resume", str(cut), "--no-progress"]) == 0
    for name in ("novelty", "population", "reward"):
        a = Archive.load(ref / "archive" / f"{name}.safetensors")
        b = Archive.load(cut / "archive" / f"{name}.safetensors")
        assert torch.equal(a.genomes, b.genomes) and torch.equal(a.objectives, b.objectives), name
    line = json.loads((ref / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"phase", "candidates", "active_emitters", "reward_archive_size"} <= set(line)
