"""The ``champions`` archive, the ``max_return`` metric and ``qd inspect --top``."""

import json

import pytest
import torch
from serene_reference import PointGoals

import envs
from qd.archive import Archive
from qd.champions import Champions
from qd.cli import main
from qd.run import RunConfig, start
from qd.run_folder import read_metrics

pytestmark = pytest.mark.usefixtures("one_thread")
if "point-goals" not in envs.names():  # a tiny env with two reward areas
    envs.register("point-goals", PointGoals)

SPEC = {"descriptor_size": 2, "reward_areas": 2}


def _offer(champions, fitness, area, genomes=None):
    fitness = torch.tensor(fitness, dtype=torch.float32)
    n = len(fitness)
    genomes = torch.arange(n * 3, dtype=torch.float32).view(n, 3) if genomes is None else genomes
    champions.update(genomes, fitness, torch.tensor(area), torch.rand(n, 2))


def test_champions_keep_the_first_best_of_each_area_and_outside():
    champions = Champions(genome_size=3, env_spec=SPEC)
    assert champions.max_return is None
    _offer(champions, [0.0, 0.5, 0.2, 0.5, float("nan")], [-1, 1, 1, 1, 0])
    archive = champions.archive
    assert archive.field("reward_area").tolist() == [-1, 1]  # NaN row skipped, area 0 unseen
    assert archive.objectives.tolist() == [0.0, 0.5]
    assert archive.genomes[1].tolist() == [3.0, 4.0, 5.0]  # the first of the equal bests
    _offer(champions, [0.5, 0.9, 0.3], [1, 0, -1], genomes=torch.full((3, 3), 7.0))
    assert archive.field("reward_area").tolist() == [-1, 0, 1]
    assert archive.objectives.tolist() == pytest.approx([0.3, 0.9, 0.5])
    assert archive.genomes[2].tolist() == [3.0, 4.0, 5.0]  # a tie does not replace it
    assert champions.max_return == pytest.approx(0.9)


def test_no_reward_areas_keeps_the_best_return():
    champions = Champions(genome_size=3, env_spec={"descriptor_size": 2, "reward_areas": 0})
    _offer(champions, [-200.0, -150.0, -180.0], [-1, -1, -1])
    _offer(champions, [-190.0], [-1])
    assert len(champions.archive) == 1 and champions.max_return == -150.0


def _config(tmp_path, name, **kw):
    return RunConfig(
        algorithm="serene",
        env="point-goals",
        out=str(tmp_path / name),
        budget=kw.pop("budget", 1500),
        algorithm_config={"chunk_size": 400},
        checkpoint_every=400,
        **kw,
    )


def test_runs_keep_champions_and_max_return(tmp_path, capsys):
    folder = start(_config(tmp_path, "run"), progress=False)
    last = read_metrics(folder)[-1]
    champions = Archive.load(folder / "archive" / "champions.safetensors")
    areas = champions.field("reward_area").tolist()
    assert areas == sorted(set(areas)) and max(areas) >= 0  # a reward area was reached
    for row, area in enumerate(areas):
        if area >= 0:
            assert champions.objectives[row].item() == pytest.approx(last["max_reward"][area])
    assert last["max_return"] == pytest.approx(champions.objectives.max().item())
    latest = sorted((folder / "checkpoints").iterdir())[-1]  # SERENE: the last chunk boundary
    assert (latest / "archive-champions.safetensors").is_file()
    # the stored genome reproduces its return
    best = int(champions.objectives.argmax())
    out = str(tmp_path / "r.png")
    args = ["replay", str(folder), "--archive", "champions", "--index", str(best), "--out", out]
    assert main(args) == 0
    assert "matches" in capsys.readouterr().out


def _archive(values, name, area=-1):
    archive = Archive(solution_dim=1, measure_dim=2, name=name)
    n = len(values)
    archive.add(
        torch.zeros(n, 1),
        torch.tensor(values),
        torch.tensor([[float(i), -float(i)] for i in range(n)]),
        reward_area=torch.full((n,), area),
    )
    return archive


def _folder(tmp_path, archives):
    from qd.run_folder import write_archives, write_config

    folder = tmp_path / "fake"
    config = RunConfig(algorithm="ns", env="hardmaze", out=str(folder))
    folder.mkdir()
    from dataclasses import asdict

    write_config(folder, asdict(config))
    (folder / "metrics.jsonl").write_text("")
    write_archives(folder, archives)
    return folder


def test_inspect_top_picks_the_archive_holding_the_best(tmp_path, capsys):
    """MountainCar-like: the novelty archive's rows all at -200, the best return elsewhere."""
    folder = _folder(
        tmp_path,
        {
            "novelty": _archive([-200.0, -200.0, -200.0], "novelty"),
            "population": _archive([-200.0, -190.0], "population"),
            "champions": _archive([-150.0], "champions"),
        },
    )
    assert main(["inspect", str(folder), "--top", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["archive"].endswith("champions.safetensors")
    assert [r["objective"] for r in out["rows"]] == [-150.0]
    assert main(["inspect", str(folder), "--top", "2", "--archive", "novelty", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["archive"].endswith("novelty.safetensors")
    # a component of a vector field; ties go to the main archive
    assert main(["inspect", str(folder), "--top", "2", "--by", "ground_truth[0]", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["archive"].endswith("novelty.safetensors")
    assert [r["ground_truth[0]"] for r in out["rows"]] == [2.0, 1.0]
    assert main(["inspect", str(folder), "--top", "1", "--by", "measures[-1]", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"][0]["measures[-1]"] == 0.0
    for bad, message in [
        (["--by", "ground_truth[5]"], "no component 5"),
        (["--by", "ground_truth"], "ground_truth[0]"),
        (["--by", "nope"], "no field 'nope'"),
        (["--top", "0"], "--top must be >= 1"),
    ]:
        args = ["inspect", str(folder), "--archive", "novelty"] + bad
        assert main(args if "--top" in bad else [*args, "--top", "1"]) == 2
        assert message in capsys.readouterr().err
