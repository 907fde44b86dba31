import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import envs
from qd.algorithms.ns import NoveltySearch, NSConfig
from qd.archive import Archive
from qd.cli import main
from qd.evaluation import LocalEvaluator
from qd.policies import SereneMLP
from qd.run import RunConfig, start

SHORT = {"episode_length": 60}


def _ns(seed=0, **cfg):
    env = envs.make("hardmaze", **SHORT)
    ns = NoveltySearch(
        NSConfig(**cfg), genome_size=63, measure_dim=2, env_spec=env.spec.to_dict(), seed=seed
    )
    return ns, LocalEvaluator(env, SereneMLP((5, 5, 5, 2)))


def _generations(ns, ev, n):
    for _ in range(n):
        g = ns.ask()
        out = ev.evaluate(g)
        ns.tell(g, out, out.descriptor)


def test_ns_ask_tell_numbers():
    ns, ev = _ns()
    first = ns.ask()
    assert first.shape == (100, 63) and first.abs().max() <= 5
    out = ev.evaluate(first)
    ns.tell(first, out, out.descriptor)
    assert len(ns.population) == 100 and len(ns.archive) == 0  # offspring only are archived
    offspring = ns.ask()
    assert offspring.shape == (200, 63)
    parents = ns.population.genomes.repeat_interleave(2, 0)
    diff = offspring - parents
    inside = parents.abs() < 4.5
    assert diff[inside].std().item() == pytest.approx(0.05, rel=0.05)
    out = ev.evaluate(offspring)
    ns.tell(offspring, out, out.descriptor)
    assert len(ns.archive) == 5 and len(ns.population) == 100
    # the population is the most novel of population + offspring
    assert ns.population.field("novelty_score").min() >= 0
    assert ns.ask(max_count=7).shape == (7, 63)


def test_ns_selects_most_novel():
    ns, ev = _ns(pop_size=10)
    _generations(ns, ev, 3)
    union_before = ns.population.descriptors.clone()
    g = ns.ask()
    out = ev.evaluate(g)
    n_archive = len(ns.archive)
    union = torch.cat([union_before, out.descriptor])
    novelty = ns.archive.novelty(
        union, reference=union, self_index=n_archive + torch.arange(len(union))
    )
    ns.tell(g, out, out.descriptor)
    expected = torch.sort(novelty, descending=True, stable=True).values[:10]
    assert torch.allclose(ns.population.field("novelty_score"), expected)


def test_ns_deterministic_and_state_roundtrip(tmp_path):
    a, ev = _ns(seed=3)
    b, _ = _ns(seed=3)
    _generations(a, ev, 4)
    _generations(b, ev, 2)
    state = b.state_dict()
    paths = {n: arch.save(tmp_path / f"{n}.safetensors") for n, arch in b.archives.items()}
    c, _ = _ns(seed=99)
    c.load_state_dict(state, {n: Archive.load(p) for n, p in paths.items()})
    _generations(c, ev, 2)
    assert torch.equal(a.archive.genomes, c.archive.genomes)
    assert torch.equal(a.population.genomes, c.population.genomes)


def test_ns_config_errors():
    with pytest.raises(ValueError, match="archive_rule"):
        NSConfig(archive_rule="nope")
    with pytest.raises(ValueError, match="sigma"):
        NSConfig(sigma=0)


def _config(tmp_path, name="run", budget=1500, **kw):
    return RunConfig(
        algorithm="ns",
        env="hardmaze",
        out=str(tmp_path / name),
        budget=budget,
        env_options=dict(SHORT),
        checkpoint_every=400,
        **kw,
    )


METRIC_KEYS = {
    "evaluations",
    "coverage",
    "coverage_archive",
    "uniformity",
    "archive_size",
    "max_reward",
    "evals_per_s",
    "wall_time_s",
}


def test_run_writes_folder(tmp_path):
    folder = start(_config(tmp_path), progress=False)
    lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    assert METRIC_KEYS <= set(lines[0])
    assert lines[-1]["evaluations"] == 1500 and len(lines[-1]["max_reward"]) == 2
    assert (folder / "archive" / "novelty.safetensors").is_file()
    for plot in ("coverage.png", "archive.png"):
        assert (folder / "plots" / plot).stat().st_size > 1000
    assert len(list((folder / "checkpoints").iterdir())) == 2
    config = json.loads((folder / "config.json").read_text())
    assert config["run_format"] == 1 and config["budget"] == 1500


def _final(folder):
    return {
        n: Archive.load(folder / "archive" / f"{n}.safetensors") for n in ("novelty", "population")
    }


def _assert_same_archives(a, b):
    for name in a:
        for field in a[name].field_list:
            assert torch.equal(a[name].field(field), b[name].field(field)), (name, field)


def test_resume_after_partial_checkpoint_and_cut_metrics(tmp_path):
    reference = _final(start(_config(tmp_path, "ref"), progress=False))
    folder = start(_config(tmp_path, "cut", budget=1500), progress=False)
    # Simulate a kill in the middle of a checkpoint write and of a metrics line:
    ckpts = sorted((folder / "checkpoints").iterdir())
    (folder / "checkpoints" / ".tmp-000000009999").mkdir()
    (folder / "checkpoints" / ".tmp-000000009999" / "state.safetensors").write_bytes(b"junk")
    with open(folder / "metrics.jsonl", "a") as f:
        f.write('{"evaluations": 99')
    import shutil

    shutil.rmtree(folder / "archive")
    shutil.rmtree(ckpts[-1])
    main(["run", "--resume", str(folder), "--no-progress"])
    _assert_same_archives(reference, _final(folder))
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    evaluations = [json.loads(x)["evaluations"] for x in lines]
    assert evaluations == sorted(set(evaluations)) and evaluations[-1] == 1500
    assert not list((folder / "checkpoints").glob(".tmp-*"))


def test_sigkill_then_resume_gives_same_archive(tmp_path):
    reference = _final(start(_config(tmp_path, "ref", budget=3000), progress=False))
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "qd.cli",
        "run",
        "ns",
        "--env",
        "hardmaze",
        "--budget",
        "3000",
        "--out",
        str(out),
        "--set",
        "env.episode_length=60",
        "--set",
        "checkpoint_every=400",
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "checkpoints").glob("0*")):
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert main(["run", "--resume", str(out), "--no-progress"]) == 0
    _assert_same_archives(reference, _final(out))


def test_bad_run_inputs(tmp_path, capsys):
    assert main(["run", "nope", "--env", "hardmaze", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "known algorithms:" in err and " ns," in err and "serene" in err
    assert main(["run", "ns", "--env", "nowhere", "--out", str(tmp_path / "b")]) == 2
    assert "known environments" in capsys.readouterr().err
    assert (
        main(["run", "ns", "--env", "hardmaze", "--budget", "0", "--out", str(tmp_path / "c")]) == 2
    )
    assert "budget" in capsys.readouterr().err
    assert (
        main(["run", "ns", "--env", "hardmaze", "--set", "bogus=1", "--out", str(tmp_path / "d")])
        == 2
    )
    assert "unknown config key 'bogus'" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    assert main(["run", "ns", "--env", "hardmaze", "--out", str(busy)]) == 2
    assert "not empty" in capsys.readouterr().err and (busy / "keep.txt").read_text() == "mine"
    assert main(["run", "--resume", str(tmp_path / "missing")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text(json.dumps({"run_format": 0, "qdtorch_version": "0.0.1"}))
    assert main(["run", "--resume", str(old)]) == 2
    assert "run format" in capsys.readouterr().err
    for name in ("a", "b", "c", "d"):
        assert not (tmp_path / name).exists()


def test_inspect_json(tmp_path, capsys):
    folder = start(_config(tmp_path, budget=600), progress=False)
    capsys.readouterr()
    assert main(["inspect", str(folder), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {
        "algorithm",
        "env",
        "evaluations",
        "archives",
        "coverage",
        "uniformity",
        "max_reward",
        "wall_time_s",
    } <= set(info)
    assert info["evaluations"] == 600 and info["archives"]["novelty"] == 15  # 3 x 5 offspring
    assert main(["inspect", str(folder)]) == 0
    assert "coverage" in capsys.readouterr().out


def test_policy_hidden_is_recorded_and_replayed(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", "ns", "--env", "hardmaze", "--budget", "300", "--out", str(out)]
    args += ["--set", "policy_hidden=[4]", "--set", "env.episode_length=50", "--no-progress"]
    assert main(args) == 0
    genomes = Archive.load(out / "archive" / "novelty.safetensors").genomes
    assert genomes.shape[1] == 5 * 4 + 1 + 4 * 2 + 1  # 5 -> 4 -> 2, one bias per layer
    assert main(["replay", str(out), "--index", "0", "--out", str(tmp_path / "r.png")]) == 0
    assert "matches" in capsys.readouterr().out
    bad = ["run", "ns", "--env", "hardmaze", "--set", "policy_hidden=x", "--out", "x"]
    assert main(bad) == 2
    assert "policy_hidden expects a list" in capsys.readouterr().err
