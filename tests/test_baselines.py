"""Baselines (qd/algorithms/baselines.py): pyribs equivalence, exact resume, budget, errors."""

import json
import shutil

import numpy as np
import pytest
import torch
from ribs.archives import GridArchive
from ribs.emitters import EvolutionStrategyEmitter, GaussianEmitter
from ribs.schedulers import Scheduler

from qd.algorithms import lookup
from qd.algorithms.baselines import CMAME, CMAMEConfig, GridElites, MapElites, MEConfig
from qd.algorithms.reward_search import CMAES, CMAESConfig, RandomConfig, RandomSearch
from qd.archive import Archive
from qd.cli import main
from qd.evaluation import Outcomes
from qd.run import RunConfig, start

D = 4
SPEC = {
    "name": "toy",
    "descriptor_size": 2,
    "descriptor_low": [-1.0, -1.0],
    "descriptor_high": [1.0, 1.0],
    "grid_shape": [20, 20],
    "reward_areas": 0,
}


def toy(solutions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the evaluator sees: float32 genomes; fitness -||x||^2, measures x[:2]."""
    x = np.asarray(solutions, dtype=np.float32)
    return -(x**2).sum(1), x[:, :2].copy()


def toy_outcomes(genomes: torch.Tensor) -> Outcomes:
    fitness, measures = toy(genomes.numpy())
    n = len(fitness)
    return Outcomes(
        fitness=torch.from_numpy(fitness),
        reward_area=torch.full((n,), -1, dtype=torch.long),
        descriptor=torch.from_numpy(measures),
        final_obs=torch.zeros(n, 1),
    )


def drive(algo, generations: int) -> None:
    for _ in range(generations):
        genomes = algo.ask()
        outcomes = toy_outcomes(genomes)
        algo.tell(genomes, outcomes, outcomes.descriptor)


def plain_loop(make_emitters, seed: int, generations: int) -> GridArchive:
    """The pyribs loop our classes should reproduce (seeds as documented in baselines.py)."""
    archive_seed, init_seed, emitter_seed = np.random.SeedSequence(seed).spawn(3)
    archive = GridArchive(
        solution_dim=D, dims=[20, 20], ranges=[(-1, 1), (-1, 1)], seed=archive_seed
    )
    scheduler = Scheduler(archive, make_emitters(archive, init_seed, emitter_seed))
    for _ in range(generations):
        solutions = scheduler.ask()
        objective, measures = toy(solutions)
        scheduler.tell(objective, measures)
    return archive


def assert_same_elites(ours, archive: GridArchive) -> None:
    mine = ours.grid.archive.data()
    theirs = archive.data()
    assert len(theirs["index"]) > 20
    for field in ("index", "solution", "objective", "measures"):
        assert np.array_equal(mine[field], theirs[field]), field
    elites = ours.archives["elites"]
    assert torch.equal(elites.genomes, torch.from_numpy(theirs["solution"]).float())
    assert torch.equal(elites.objectives, torch.from_numpy(theirs["objective"]).float())


def test_me_matches_plain_pyribs_loop():
    cfg = MEConfig(batch_size=30, num_emitters=2, sigma=0.1)
    ours = MapElites(cfg, genome_size=D, measure_dim=2, env_spec=SPEC, seed=7)
    drive(ours, 12)

    def emitters(archive, init_seed, emitter_seed):
        init = np.random.default_rng(init_seed).standard_normal((60, D)).clip(-5, 5)
        return [
            GaussianEmitter(
                archive,
                sigma=0.1,
                initial_solutions=init[30 * i : 30 * (i + 1)],
                bounds=[(-5, 5)] * D,
                batch_size=30,
                seed=s,
            )
            for i, s in enumerate(emitter_seed.spawn(2))
        ]

    assert_same_elites(ours, plain_loop(emitters, 7, 12))


def test_cma_me_matches_plain_pyribs_loop():
    cfg = CMAMEConfig(num_emitters=3, batch_size=8, sigma0=1.0)
    ours = CMAME(cfg, genome_size=D, measure_dim=2, env_spec=SPEC, seed=3)
    drive(ours, 50)
    assert sum(e.restarts for e in ours.emitters) > 0  # restarts (archive sampling) exercised

    def emitters(archive, init_seed, emitter_seed):
        return [
            EvolutionStrategyEmitter(
                archive,
                x0=np.zeros(D),
                sigma0=1.0,
                ranker="2imp",
                bounds=[(-5, 5)] * D,
                batch_size=8,
                seed=s,
            )
            for s in emitter_seed.spawn(3)
        ]

    assert_same_elites(ours, plain_loop(emitters, 3, 50))


CASES = {
    "me": (MapElites, MEConfig(batch_size=20, num_emitters=2, sigma=0.1)),
    "cma-me": (CMAME, CMAMEConfig(num_emitters=2, batch_size=6, sigma0=0.5)),
    "cma-es": (CMAES, CMAESConfig(population=6, sigma0=0.3)),
    "random": (RandomSearch, RandomConfig(batch_size=20)),
}


def _roundtrip(state: dict, archives: dict, tmp_path) -> tuple[dict, dict]:
    """Through the same files a checkpoint uses: safetensors + JSON, archive files."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = tmp_path / "state.safetensors"
    save_file(state["tensors"], str(path), metadata={"meta": json.dumps(state["meta"])})
    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads(handle.metadata()["meta"])
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    loaded = {n: Archive.load(a.save(tmp_path / f"{n}.safetensors")) for n, a in archives.items()}
    return {"tensors": tensors, "meta": meta}, loaded


@pytest.mark.parametrize("name", list(CASES))
def test_state_roundtrip_is_exact(name, tmp_path):
    cls, cfg = CASES[name]
    make = lambda seed: cls(cfg, genome_size=D, measure_dim=2, env_spec=SPEC, seed=seed)  # noqa: E731
    a, b = make(5), make(5)
    drive(a, 14)
    drive(b, 7)
    state, archives = _roundtrip(b.state_dict(), b.archives, tmp_path)
    c = make(99)  # everything random must come from the checkpoint
    c.load_state_dict(state, archives)
    grid_b, grid_c = b.grid.archive, c.grid.archive
    assert np.array_equal(grid_b._store.occupied_list, grid_c._store.occupied_list)
    for field in grid_b.stats.__dataclass_fields__:
        assert getattr(grid_b.stats, field) == getattr(grid_c.stats, field), field
    assert grid_b.best_elite["index"] == grid_c.best_elite["index"]
    drive(c, 7)
    for field, value in a.grid.archive.data().items():
        assert np.array_equal(value, c.grid.archive.data()[field]), field
    for arch_name, archive in a.archives.items():
        for field in archive.field_list:
            assert torch.equal(archive.field(field), c.archives[arch_name].field(field))
    assert a.generation == c.generation == 14


def test_cut_batch_and_best_record():
    ours = MapElites(
        MEConfig(batch_size=10, num_emitters=3), genome_size=D, measure_dim=2, env_spec=SPEC
    )
    drive(ours, 1)
    genomes = ours.ask(max_count=25)
    assert genomes.shape == (25, D)
    with pytest.raises(RuntimeError, match="follow ask"):
        ours.tell(genomes[:3], toy_outcomes(genomes[:3]), toy_outcomes(genomes[:3]).descriptor)
    out = toy_outcomes(genomes)
    ours.tell(genomes, out, out.descriptor)
    assert ours.ask().shape == (30, D)  # the scheduler accepts a new generation after a cut
    rs = RandomSearch(RandomConfig(batch_size=50), genome_size=D, measure_dim=2, env_spec=SPEC)
    drive(rs, 4)
    best = rs.archives["best"].objectives
    assert len(best) >= 1 and bool((best[1:] > best[:-1]).all())
    assert rs.ask(max_count=7).shape == (7, D)


RUN_ALGOS = ["me", "cma-me", "cma-es", "random"]


def _final(folder, names):
    return {n: Archive.load(folder / "archive" / f"{n}.safetensors") for n in names}


@pytest.mark.parametrize("algo", RUN_ALGOS)
def test_run_budget_archives_and_exact_resume(algo, tmp_path):
    config = RunConfig(
        algorithm=algo,
        env="hardmaze",
        out=str(tmp_path / algo),
        budget=650,
        env_options={"episode_length": 50},
        checkpoint_every=200,
    )
    folder = start(config, progress=False)
    lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    evaluations = [line["evaluations"] for line in lines]
    assert evaluations[-1] == 650 and evaluations == sorted(set(evaluations))
    assert {"coverage", "coverage_archive", "archive_size", "max_reward", "generation"} <= set(
        lines[-1]
    )
    if algo in ("me", "random"):
        assert evaluations == [200, 400, 600, 650]  # the last generation is cut to 50
    names = ["elites", "champions"] + (["best"] if algo in ("cma-es", "random") else [])
    final = _final(folder, names)
    assert sorted(p.stem for p in (folder / "archive").iterdir()) == sorted(names)
    assert len(final["elites"]) == lines[-1]["archive_size"] > 0
    ckpts = sorted((folder / "checkpoints").iterdir())
    assert len(ckpts) == 2
    shutil.rmtree(ckpts[-1])
    shutil.rmtree(folder / "archive")
    assert main(["run", "--resume", str(folder), "--no-progress"]) == 0
    resumed = _final(folder, names)
    for name in names:
        for field in final[name].field_list:
            assert torch.equal(final[name].field(field), resumed[name].field(field)), (name, field)
    again = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [x["evaluations"] for x in again] == evaluations
    assert [x["coverage_archive"] for x in again] == [x["coverage_archive"] for x in lines]


def test_bad_config_values(tmp_path, capsys):
    bad = [
        (MEConfig, {"sigma": 0}, "sigma must be > 0"),
        (MEConfig, {"batch_size": 0}, "batch_size must be > 0"),
        (MEConfig, {"space": "final_obs"}, "space must be 'ground_truth'"),
        (MEConfig, {"genome_low": 5.0}, "genome_low must be < genome_high"),
        (CMAMEConfig, {"ranker": "best"}, "ranker must be one of"),
        (CMAMEConfig, {"batch_size": 1}, "batch_size must be >= 2"),
        (CMAMEConfig, {"restart_rule": "never"}, "restart_rule"),
        (CMAMEConfig, {"selection_rule": "all"}, "selection_rule"),
        (CMAESConfig, {"population": 1}, "population must be 0"),
        (CMAESConfig, {"sigma0": -1.0}, "sigma0 must be > 0"),
        (RandomConfig, {"init_std": 0.0}, "init_std must be > 0"),
    ]
    for cls, kwargs, message in bad:
        with pytest.raises(ValueError, match=message):
            cls(**kwargs)
    for name in RUN_ALGOS:
        assert lookup(name).config in (MEConfig, CMAMEConfig, CMAESConfig, RandomConfig)
    with pytest.raises(ValueError, match="no ground-truth grid"):
        GridElites(solution_dim=D, env_spec={"name": "x", "descriptor_size": 2}, seed=0)
    with pytest.raises(ValueError, match="measure_dim"):
        MapElites(MEConfig(), genome_size=D, measure_dim=3, env_spec=SPEC)
    out = str(tmp_path / "bad")
    assert main(["run", "cma-me", "--env", "hardmaze", "--out", out, "--set", "ranker=x"]) == 2
    assert "ranker must be one of" in capsys.readouterr().err
    assert main(["run", "me", "--env", "hardmaze", "--out", out, "--set", "sigma=abc"]) == 2
    assert "bad value 'abc' for sigma" in capsys.readouterr().err


def test_cli_tools_default_to_the_main_archive(tmp_path, capsys):
    from qd.cli import main

    out = tmp_path / "me"
    args = ["run", "me", "--env", "hardmaze", "--budget", "250", "--out", str(out)]
    assert main([*args, "--set", "env.episode_length=30", "--no-progress"]) == 0
    assert main(["inspect", str(out), "--top", "1"]) == 0
    assert "elites.safetensors" in capsys.readouterr().out
    assert (out / "plots" / "archive.png").exists()
