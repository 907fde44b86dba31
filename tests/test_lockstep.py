"""Lockstep seeds: N searches evaluated in one batch per round, each identical to its own run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from serene_reference import PointGoals

import envs
from qd.archive import Archive
from qd.cli import main
from qd.evaluation import LocalEvaluator
from qd.policies import SereneMLP
from qd.run import RunConfig, parse_seeds, start
from qd.run_folder import read_metrics, without_timing

SEEDS = [0, 1, 2]
pytestmark = pytest.mark.usefixtures("one_thread")
if "point-goals" not in envs.names():  # a tiny env where SERENE's emitters run at once
    envs.register("point-goals", PointGoals)


def _config(tmp_path, name, algorithm, env, budget, **kw):
    return RunConfig(
        algorithm=algorithm,
        env=env,
        out=str(tmp_path / name),
        budget=budget,
        checkpoint_every=kw.pop("checkpoint_every", 400),
        **kw,
    )


def _assert_same_run(a, b):
    """Bit-identical archives, and metrics equal except timing fields."""
    names = sorted(p.name for p in (a / "archive").iterdir())
    assert names and names == sorted(p.name for p in (b / "archive").iterdir())
    rows = 0
    for name in names:
        x, y = Archive.load(a / "archive" / name), Archive.load(b / "archive" / name)
        assert x.field_list == y.field_list and len(x) == len(y)
        rows += len(x)
        for field in x.field_list:
            assert torch.equal(x.field(field), y.field(field)), (name, field)
    assert rows > 0
    ma = [without_timing(m) for m in read_metrics(a)]
    mb = [without_timing(m) for m in read_metrics(b)]
    assert ma == mb and len(ma) > 1


SHORT_MAZE = {"env_options": {"episode_length": 60}}
SHORT_CURLING = {"env_options": {"episode_length": 100}}
CHUNKS = {"algorithm_config": {"chunk_size": 400}}
CASES = [
    ("ns", "hardmaze", 900, SHORT_MAZE),
    ("ns", "curling", 700, SHORT_CURLING),
    ("serene", "hardmaze", 1300, {**SHORT_MAZE, **CHUNKS}),
    ("serene", "curling", 1300, {**SHORT_CURLING, **CHUNKS}),
    ("serene", "point-goals", 2000, CHUNKS),
    ("me", "hardmaze", 650, {"env_options": {"episode_length": 50}}),
]


@pytest.mark.parametrize(("algorithm", "env", "budget", "kw"), CASES)
def test_lockstep_equals_separate_runs(tmp_path, algorithm, env, budget, kw):
    lock = start(
        _config(tmp_path, "lock", algorithm, env, budget, **kw), seeds=SEEDS, progress=False
    )
    assert json.loads((lock / "lockstep.json").read_text())["seeds"] == SEEDS
    for seed in SEEDS:
        alone = start(
            _config(tmp_path, f"alone-{seed}", algorithm, env, budget, seed=seed, **kw),
            progress=False,
        )
        _assert_same_run(lock / f"seed-{seed}", alone)
    if env == "point-goals":  # the emitters ran, in lockstep with other seeds' NS generations
        assert all(read_metrics(lock / f"seed-{s}")[-1]["emitter_evaluations"] for s in SEEDS)
    # different seeds really are different searches
    a = (
        Archive.load(lock / "seed-0" / "archive" / "novelty.safetensors")
        if algorithm != "me"
        else Archive.load(lock / "seed-0" / "archive" / "elites.safetensors")
    )
    b = Archive.load(lock / "seed-1" / "archive" / f"{a.name}.safetensors")
    assert not torch.equal(a.genomes[: min(len(a), len(b))], b.genomes[: min(len(a), len(b))])


def test_lockstep_with_random_reset_env(tmp_path):
    """point-trap with reset noise: each seed's rows are reset with that seed's generator."""
    kw = {"env_options": {"reset_noise": 0.1, "episode_length": 20}}
    lock = start(_config(tmp_path, "lock", "ns", "point-trap", 600, **kw), seeds=[3, 4])
    for seed in (3, 4):
        alone = start(
            _config(tmp_path, f"alone-{seed}", "ns", "point-trap", 600, seed=seed, **kw),
            progress=False,
        )
        _assert_same_run(lock / f"seed-{seed}", alone)


def _lockstep_cmd(out):
    return [
        sys.executable, "-m", "qd.cli", "run", "ns", "--env", "hardmaze",
        "--budget", "3000", "--seeds", "0-2", "--out", str(out),
        "--set", "env.episode_length=60", "--set", "checkpoint_every=400", "--no-progress",
    ]  # fmt: skip


def test_sigkill_then_resume_lockstep(tmp_path):
    ref = start(
        _config(tmp_path, "ref", "ns", "hardmaze", 3000, env_options={"episode_length": 60}),
        seeds=SEEDS,
        progress=False,
    )
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        _lockstep_cmd(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 180
    while time.time() < deadline and not list((out / "seed-2" / "checkpoints").glob("0*")):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "seed-0" / "archive").exists()  # killed before the end
    assert main(["run", "--resume", str(out), "--no-progress"]) == 0
    for seed in SEEDS:
        _assert_same_run(ref / f"seed-{seed}", out / f"seed-{seed}")


def test_lockstep_cli_tools_accept_the_parent(tmp_path, capsys):
    out = tmp_path / "lock"
    args = ["run", "ns", "--env", "curling", "--budget", "500", "--seeds", "0", "5"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [s["seed"] for s in info["seeds"]] == [0, 5]
    assert all(s["finished"] and s["evaluations"] == 500 for s in info["seeds"])
    assert main(["inspect", str(out)]) == 0
    assert "2 seeds in lockstep" in capsys.readouterr().out
    png = tmp_path / "cmp.png"
    assert main(["compare", str(out), "--out", str(png)]) == 0
    groups = json.loads(capsys.readouterr().out)["groups"]
    assert [g["runs"] for g in groups.values()] == [2] and png.is_file()
    assert main(["plot", str(out)]) == 2
    assert "lockstep seeds" in capsys.readouterr().err
    assert main(["run", "ns", "--env", "curling", "--seed", "1", "--seeds", "2"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["run", "--resume", str(out), "--seeds", "0-3"]) == 2
    assert "--resume takes only the run folder" in capsys.readouterr().err


def test_parse_seeds():
    assert parse_seeds(["0-3", "7"]) == [0, 1, 2, 3, 7]
    assert parse_seeds([2, 1]) == [2, 1]
    for bad in (["x"], ["3-1"], ["1", "1"], ["-1"], []):
        with pytest.raises(ValueError):
            parse_seeds(bad)


def _policy(env):
    spec = env.spec
    return SereneMLP((spec.obs_size, 5, 5, 5, spec.action_size))


@pytest.mark.parametrize("name", ["hardmaze", "curling", "billiard", "redundant-arm", "point-trap"])
def test_seed_envs_are_batch_invariant(name):
    """A genome's outcome does not depend on the batch it is evaluated in (CPU)."""
    env = envs.make(name)
    policy = _policy(env)
    gen = torch.Generator().manual_seed(0)
    genomes = torch.randn(40, policy.genome_size, generator=gen)
    evaluator = LocalEvaluator(env, policy, max_batch=4096)
    alone = evaluator.evaluate(genomes[:3], path=4)
    mixed = evaluator.evaluate(torch.cat([genomes[10:], genomes[:3], genomes[3:10]]), path=4)
    picked = mixed.select(slice(30, 33))
    for field in ("fitness", "reward_area", "descriptor", "final_obs", "path"):
        assert torch.equal(getattr(alone, field), getattr(picked, field)), field
    small = LocalEvaluator(env, policy, max_batch=7).evaluate(genomes)
    full = evaluator.evaluate(genomes)
    assert torch.equal(small.final_obs, full.final_obs)
