import json
import math
import shutil

import pytest
import torch

from qd.algorithms.dvd import (
    DvDESConfig,
    RunningStats,
    es_gradient,
    initial_genomes,
    population_determinants,
)
from qd.archive import Archive, rbf_log_det
from qd.bandit import ThompsonBandit
from qd.cli import main
from qd.policies import TanhMLP
from qd.run import RunConfig, parse_overrides, start


def test_population_determinant_by_hand():
    # two agents: every column z-scores to -1 / +1, so ||x - y||^2 = 4 F; gamma = 1 / F
    embeddings = torch.tensor([[0.0, 0.0], [1.0, 3.0]])
    expected = 1 - math.exp(-2 * 4)  # det [[1, k], [k, 1]] with k = exp(-8 / 2)
    assert population_determinants(embeddings).item() == pytest.approx(expected, rel=1e-5)
    same = torch.zeros(2, 3)  # identical agents: zero volume (jitter keeps it finite)
    assert population_determinants(same).item() == pytest.approx(0.0, abs=1e-4)
    with pytest.raises(ValueError, match="NaN"):
        rbf_log_det(torch.tensor([[float("nan"), 0.0], [1.0, 1.0]]))


def test_batched_log_det_matches_one_by_one():
    gen = torch.Generator().manual_seed(0)
    sets = torch.randn(4, 3, 5, 2, generator=gen, dtype=torch.float64)
    sets[1, 2, 1] = sets[1, 2, 0]  # a duplicate row needs jitter in this set only
    batched = rbf_log_det(sets, lengthscale=0.7)
    for i in range(4):
        for j in range(3):
            assert batched[i, j].item() == pytest.approx(
                rbf_log_det(sets[i, j], lengthscale=0.7).item(), rel=1e-9
            )
    k = math.exp(-1 / (2 * 0.7**2))
    pair = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    assert rbf_log_det(pair, lengthscale=0.7).item() == pytest.approx(math.log(1 - k * k), rel=1e-4)
    archive = Archive(solution_dim=1, measure_dim=2)
    archive.add(torch.zeros(2, 1), None, pair.float())
    assert archive.kernel_diversity(lengthscale=0.7).item() == pytest.approx(
        math.log(1 - k * k), rel=1e-4
    )


def test_es_gradient_by_hand_and_unbiased():
    fitness = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])  # one agent, two directions
    noise = torch.eye(2)[None]
    assert es_gradient(fitness, noise)[0].tolist() == pytest.approx([0.5, -1.0])
    # linear objective w . theta: the antithetic estimate tends to 2 sigma w
    gen = torch.Generator().manual_seed(1)
    w, sigma = torch.tensor([1.0, -2.0, 0.5]), 0.1
    eps = torch.randn(1, 20000, 3, generator=gen)
    plus, minus = (sigma * eps) @ w, (-sigma * eps) @ w
    g = es_gradient(torch.stack([plus, minus], -1), eps)[0]
    assert torch.allclose(g, 2 * sigma * w, atol=0.01)


def test_bandit_posterior_and_choice():
    bandit = ThompsonBandit(arms=(0.0, 0.5), lookback=2, random_pulls=0, window=50)
    bandit.choices = [0, 1, 0, 1]
    for reward in (0.0, 1.0, 2.0, 1.5, 3.0):
        bandit.observe(reward)
    # pull t is judged by r[t+1] > max(r[t-1], r[t]); pull 0 has too few rewards before it
    assert bandit.outcomes() == [(1, True), (0, False), (1, True)]
    a, b = bandit.posterior()
    assert a.tolist() == [1, 3] and b.tolist() == [2, 1]
    # an arm that always succeeds ends up chosen almost always
    greedy = ThompsonBandit(lookback=1, random_pulls=5, seed=3)
    reward = 0.0
    greedy.observe(reward)
    for _ in range(60):
        arm = greedy.choose()
        reward += 1.0 if arm == 0.5 else -1.0
        greedy.observe(reward)
    assert greedy.choices[5:].count(1) > 45
    # the window keeps only the last decided pulls; state round trip continues identically
    short = ThompsonBandit(window=3, lookback=1, random_pulls=0)
    short.choices = [0] * 6
    for r in range(7):
        short.observe(float(r))
    assert len(short.outcomes()) == 3
    copy = ThompsonBandit(seed=9)
    copy.load_state_dict(json.loads(json.dumps(greedy.state_dict())))
    assert [copy.choose() for _ in range(5)] == [greedy.choose() for _ in range(5)]
    with pytest.raises(ValueError, match="finite"):
        greedy.observe(float("nan"))


def test_running_stats_and_folded_normaliser():
    gen = torch.Generator().manual_seed(0)
    stats = RunningStats(2, 3)
    a = torch.randn(2, 50, 3, generator=gen) * 3 + 1
    b = torch.randn(2, 70, 3, generator=gen)
    stats.update(a)
    stats.update(b)
    both = torch.cat([a, b], 1).double()
    assert torch.allclose(stats.mean, both.mean(1))
    assert torch.allclose(stats.std(), both.std(1), atol=1e-9)
    policy = TanhMLP((3, 16, 16, 2), output_bias=False)
    genomes = initial_genomes(policy, 2, gen)
    folded = policy.fold_normaliser(genomes, stats.mean.float(), stats.std().float())
    obs = torch.randn(2, 3, generator=gen)
    expected = policy(genomes, (obs - stats.mean.float()) / stats.std().float())
    assert torch.allclose(policy(folded, obs), expected, atol=1e-5)


def test_overrides_of_optional_and_list_fields():
    config = RunConfig(algorithm="dvd-es", env="point-trap", out="unused")
    parsed = parse_overrides(config, ["fixed_lambda=0", "lambdas=[0,0.25,0.5]"])
    assert parsed.algorithm_config == {"fixed_lambda": 0, "lambdas": [0, 0.25, 0.5]}
    assert parse_overrides(config, ["fixed_lambda=none"]).algorithm_config["fixed_lambda"] is None


def test_config_errors():
    with pytest.raises(ValueError, match="agents"):
        DvDESConfig(agents=1)
    with pytest.raises(ValueError, match="fixed_lambda"):
        DvDESConfig(fixed_lambda=2.0)
    with pytest.raises(ValueError, match="space"):
        DvDESConfig(space="final_obs")


def _config(tmp_path, name, budget, **algo):
    return RunConfig(
        algorithm="dvd-es",
        env="point-trap",
        out=str(tmp_path / name),
        budget=budget,
        checkpoint_every=27,
        algorithm_config={"agents": 3, "directions": 4, "bandit_random_pulls": 1, **algo},
    )


def test_dvd_es_run_metrics_and_exact_resume(tmp_path):
    batch = 3 * (1 + 2 * 4)  # agents + antithetic perturbations
    folder = start(_config(tmp_path, "a", 6 * batch), progress=False)
    lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [line["evaluations"] for line in lines] == [batch * (i + 1) for i in range(6)]
    keys = {
        "population_reward_mean",
        "population_reward_max",
        "embedding_distance_mean",
        "embedding_distance_min",
        "log_det",
        "lambda",
        "iteration",
    }
    assert keys <= set(lines[-1])
    assert {line["lambda"] for line in lines} <= {0.0, 0.5}
    for plot in ("population", "diversity", "log_det", "lambda"):
        assert (folder / "plots" / f"{plot}.png").exists(), plot
    population = Archive.load(folder / "archive" / "population.safetensors")
    assert len(population) == 3 and population.descriptors.shape[1] == 20 * 2
    # agents moved, and the per-agent Adam moments are in the checkpoint
    ckpt = sorted((folder / "checkpoints").iterdir())[-1]
    from safetensors.torch import load_file

    tensors = {k[5:]: v for k, v in load_file(ckpt / "state.safetensors").items()}
    assert tensors["adam.exp_avg"].shape == tensors["agents"].shape
    assert tensors["adam.exp_avg_sq"].abs().sum() > 0
    # resume from the last checkpoint reproduces the run exactly
    shutil.rmtree(folder / "archive")
    assert main(["run", "--resume", str(folder), "--no-progress"]) == 0
    again = Archive.load(folder / "archive" / "population.safetensors")
    for field in population.field_list:
        assert torch.equal(population.field(field), again.field(field)), field


def test_dvd_es_budget_cut_and_fixed_lambda(tmp_path):
    batch = 3 * (1 + 2 * 4)
    folder = start(_config(tmp_path, "cut", 2 * batch + 5, fixed_lambda=0.0), progress=False)
    lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["evaluations"] == 2 * batch + 5
    assert all(line["lambda"] == 0.0 for line in lines)
    assert "log_det" not in lines[-1]  # the cut batch only updates the reward metrics


# -- DvD-TD3 -----------------------------------------------------------------------------------
def test_diversity_log_det_by_hand_and_gradient():
    from qd.algorithms.dvd_td3 import diversity_log_det

    emb = torch.tensor([[0.0, 0.0], [1.0, 1.0]], requires_grad=True)
    k = math.exp(-2 / 2)  # ||x - y||^2 = 2, gamma = 1 / F = 1 / 2
    beta = 0.99
    expected = math.log((beta + 1 - beta) ** 2 - (beta * k) ** 2)
    value = diversity_log_det(emb, beta=beta)
    assert value.item() == pytest.approx(expected, rel=1e-5)
    value.backward()
    # pushing the agents apart raises the volume
    assert emb.grad[1].sum() > 0 and emb.grad[0].sum() < 0


def test_replay_buffer_ring():
    from qd.algorithms.dvd_td3 import ReplayBuffer

    buffer = ReplayBuffer(5, 2, 1, "cpu")
    for i in range(3):
        n = 2
        obs = torch.full((n, 2), float(i))
        buffer.add(obs, torch.zeros(n, 1), torch.full((n,), float(i)), obs + 1, torch.ones(n))
    assert buffer.size == 5 and buffer.position == 1  # 6 rows into 5: the oldest overwritten
    assert buffer.data[:, 3].tolist() == [2.0, 0.0, 1.0, 1.0, 2.0]
    obs, action, reward, next_obs, not_done = buffer.sample((3, 4), torch.Generator())
    assert obs.shape == (3, 4, 2) and reward.shape == (3, 4) and torch.equal(next_obs, obs + 1)


def _td3_config(tmp_path, name, budget, **algo):
    return RunConfig(
        algorithm="dvd-td3",
        env="point-trap",
        out=str(tmp_path / name),
        budget=budget,
        checkpoint_every=9,
        env_options={"episode_length": 10},
        policy_hidden=[8, 8],
        algorithm_config={
            "agents": 3,
            "start_steps": 15,
            "batch_size": 8,
            "probe_states": 4,
            "bandit_random_pulls": 1,
            **algo,
        },
    )


def test_dvd_td3_run_learns_checkpoints_and_resumes_exactly(tmp_path):
    folder = start(_td3_config(tmp_path, "td3", 3 * 6 + 2), progress=False)
    lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [line["evaluations"] for line in lines] == [3, 6, 9, 12, 15, 18, 20]
    assert lines[-1]["timesteps"] == 70 and lines[-1]["updates"] == 70 - 15 + 1
    keys = {"population_reward_mean", "population_reward_max", "log_det", "lambda"}
    assert keys <= set(lines[-2])
    population = Archive.load(folder / "archive" / "population.safetensors")
    assert len(population) == 3 and population.descriptors.shape[1] == 4 * 2
    import envs
    from qd.algorithms import policy_for

    actor = policy_for("dvd-td3", envs.make("point-trap").spec, [8, 8])
    assert population.genomes.shape[1] == actor.genome_size  # archive rows are runnable genomes
    shutil.rmtree(folder / "archive")
    assert main(["run", "--resume", str(folder), "--no-progress"]) == 0
    again = Archive.load(folder / "archive" / "population.safetensors")
    for field in population.field_list:
        assert torch.equal(population.field(field), again.field(field)), field


def test_dvd_runs_on_a_gymnasium_env(tmp_path):
    pytest.importorskip("gymnasium")
    common = {"env": "gym:Pendulum-v1", "env_options": {"descriptor": "final_obs[0:2]"}}
    es = RunConfig(
        algorithm="dvd-es",
        out=str(tmp_path / "es"),
        budget=2 * 3 * (1 + 2 * 4),
        algorithm_config={"agents": 3, "directions": 4},
        **common,
    )
    td3 = RunConfig(
        algorithm="dvd-td3",
        out=str(tmp_path / "td3"),
        budget=4,
        policy_hidden=[16, 16],
        algorithm_config={"agents": 2, "start_steps": 100, "batch_size": 16},
        **common,
    )
    for config in (es, td3):
        folder = start(config, progress=False)
        last = json.loads((folder / "metrics.jsonl").read_text().splitlines()[-1])
        assert last["evaluations"] == config.budget
        assert math.isfinite(last["population_reward_max"]) and "log_det" in last
