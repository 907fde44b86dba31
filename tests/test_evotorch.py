"""EvoTorch on qdtorch: the Problem, ``qd run evotorch:<SEARCHER>``, lockstep, exact resume."""

import runpy
import shutil
import sys
from pathlib import Path

import pytest
import torch
from evotorch.algorithms import PGPE, MAPElites
from evotorch.operators import GaussianMutation

from qd.archive import Archive
from qd.cli import main
from qd.integrations.evotorch import SEARCHERS, EnvProblem, feature_grid
from qd.integrations.evotorch_search import EvoTorchConfig
from qd.metrics import grid_cells
from qd.run import RunConfig, start
from qd.run_folder import read_metrics, without_timing

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {  # settings that make each searcher's steps small
    "PGPE": {"popsize": 10},
    "SNES": {"popsize": 8},
    "XNES": {"popsize": 8},
    "CEM": {"popsize": 10, "parenthood_ratio": 0.2},
    "CMAES": {"popsize": 8},
    "GA": {"popsize": 10},
    "MAPElites": {"bins": [3, 3]},
}


def _config(tmp_path, searcher, budget=120, name=None, **kw):
    return RunConfig(
        algorithm=f"evotorch:{searcher}",
        env="curling",
        out=str(tmp_path / (name or searcher)),
        budget=budget,
        env_options={"episode_length": 20},
        algorithm_config=dict(SMALL[searcher]),
        checkpoint_every=40,
        **kw,
    )


def _archives(folder):
    return {p.stem: Archive.load(p) for p in sorted((folder / "archive").iterdir())}


def _assert_same(a, b):
    x, y = _archives(a), _archives(b)
    assert sorted(x) == sorted(y) == ["best", "champions", "elites"]
    for name in x:
        for field in x[name].field_list:
            assert torch.equal(x[name].field(field), y[name].field(field)), (name, field)
    assert [without_timing(m) for m in read_metrics(a)] == [
        without_timing(m) for m in read_metrics(b)
    ]


def test_pgpe_improves_curling_reward():
    """From a genome that ends in a goal, PGPE (on the problem, EvoTorch's own loop) finds a
    higher reward within 240 evaluations (Curling's reward is sparse: random genomes score 0)."""
    problem = EnvProblem("curling", seed=0)
    candidates = torch.randn(
        400, problem.solution_length, generator=torch.Generator().manual_seed(0)
    )
    returns = problem.evaluator.evaluate(candidates * 3).fitness
    start_reward = float(returns.max())
    assert 0 < start_reward < 0.7
    searcher = PGPE(
        problem,
        popsize=20,
        center_learning_rate=0.03,
        stdev_learning_rate=0.1,
        stdev_init=0.03,
        center_init=candidates[returns.argmax()] * 3,
    )
    best = 0.0
    for _ in range(12):
        searcher.step()
        best = max(best, float(problem.last_outcomes.fitness.max()))
    assert best > start_reward + 0.1


def test_map_elites_fills_cells():
    problem = EnvProblem("curling", seed=0, env_options={"episode_length": 50})
    grid = feature_grid(problem.env.spec.to_dict(), [4, 4])
    assert grid.shape == (16, 2, 2) and torch.isinf(grid[0, 0, 0]) and torch.isinf(grid[-1, 1, 1])
    searcher = MAPElites(
        problem, operators=[GaussianMutation(problem, stdev=0.3)], feature_grid=grid
    )
    for _ in range(3):
        searcher.step()
    filled = searcher.filled
    assert filled.sum() >= 3
    # each filled cell holds a solution whose descriptor lies in that cell
    descriptors = searcher.population.evals[:, 1:][filled]
    inside = (descriptors >= grid[filled][:, :, 0]) & (descriptors < grid[filled][:, :, 1])
    assert inside.all()


def test_cli_run_folder_tools_and_lockstep(tmp_path, capsys):
    out = tmp_path / "pgpe"
    argv = ["run", "evotorch:PGPE", "--env", "curling", "--budget", "55", "--out", str(out)]
    argv += ["--set", "popsize=10", "--set", "env.episode_length=20", "--no-progress"]
    assert main(argv) == 0
    lines = read_metrics(out)
    assert [m["evaluations"] for m in lines][-2:] == [50, 55]  # the last batch is cut
    assert lines[-1]["searcher_steps"] == 5 and lines[-1]["archive_size"] > 0
    assert {"best_objective", "mean_return", "stdev_mean"} <= set(lines[-1])
    assert (out / "archive" / "elites.safetensors").is_file()
    assert main(["inspect", str(out)]) == 0
    assert "elites" in capsys.readouterr().out
    assert main(["plot", str(out), "--kind", "coverage", "--out", str(tmp_path / "c.png")]) == 0
    # lockstep seeds: each seed equals its separate run
    lock = start(_config(tmp_path, "CMAES", budget=48, name="lock"), seeds=[0, 1], progress=False)
    alone = start(_config(tmp_path, "CMAES", budget=48, name="alone", seed=1), progress=False)
    _assert_same(lock / "seed-1", alone)


@pytest.mark.parametrize("searcher", SEARCHERS)
def test_exact_resume(searcher, tmp_path):
    folder = start(_config(tmp_path, searcher), progress=False)
    straight = tmp_path / "straight"
    shutil.copytree(folder, straight)
    ckpts = sorted((folder / "checkpoints").iterdir())
    assert len(ckpts) == 2
    shutil.rmtree(ckpts[-1])
    shutil.rmtree(folder / "archive")
    assert main(["run", "--resume", str(folder), "--no-progress"]) == 0
    _assert_same(folder, straight)


def test_bad_names_and_settings(tmp_path, capsys):
    out = str(tmp_path / "bad")
    base = ["--env", "curling", "--out", out, "--no-progress"]
    assert main(["run", "evotorch:Foo", *base]) == 2
    err = capsys.readouterr().err
    assert "unknown EvoTorch searcher 'Foo'" in err and "evotorch:PGPE" in err
    assert main(["run", "evotorch:PGPE", *base, "--set", "parenthood_ratio=0.5"]) == 2
    assert "parenthood_ratio does not apply to PGPE (only CEM)" in capsys.readouterr().err
    assert main(["run", "evotorch:PGPE", *base, "--set", "popsize=7"]) == 2
    assert "popsize must be even" in capsys.readouterr().err
    assert main(["run", "evotorch:PGPE", *base, "--set", "searcher=SNES"]) == 2
    assert "evotorch:<SEARCHER>" in capsys.readouterr().err
    assert main(["run", "evotorch:MAPElites", *base, "--set", "space=final_obs"]) == 2
    assert "space must be 'ground_truth'" in capsys.readouterr().err
    assert main(["run", "nope", *base]) == 2
    assert "evotorch:<PGPE|" in capsys.readouterr().err
    with pytest.raises(ValueError, match="must be >= 2"):
        EvoTorchConfig(searcher="CEM", popsize=10)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        EvoTorchConfig(optimizer="rmsprop")
    assert EvoTorchConfig(searcher="SNES").resolved()["popsize"] == 0  # EvoTorch's default


def test_grid_cells_order_matches_feature_grid():
    spec = EnvProblem("curling", env_options={"episode_length": 5}).env.spec.to_dict()
    grid = feature_grid(spec)
    centres = grid.clamp(-1.35, 1.35).mean(-1)  # [cells, 2]
    assert torch.equal(grid_cells(centres, spec), torch.arange(len(grid)))


@pytest.mark.parametrize("loop", [False, True])
def test_example_script(loop, tmp_path, monkeypatch, capsys):
    script = Path(__file__).resolve().parent.parent / "examples" / "evotorch_pgpe_curling.py"
    monkeypatch.chdir(tmp_path)
    args = ["--budget", "40", "--popsize", "10", "--episode-length", "20", "--out", "run"]
    monkeypatch.setattr(
        sys, "argv", [script.name, *args, *(["--loop", "--generations", "2"] if loop else [])]
    )
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    if loop:
        assert "generation 2: mean return" in out
    else:
        assert (tmp_path / "run" / "archive" / "elites.safetensors").is_file()
