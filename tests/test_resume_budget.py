"""Resume with a new budget, the run folder written before the first evaluation, the final
checkpoint, and CLI values checked before the --out folder is made."""

import json

import pytest
import torch

from qd.archive import Archive
from qd.cli import main
from qd.evaluation import LocalEvaluator
from qd.run import RunConfig, resume, start
from qd.run_folder import read_metrics, without_timing

pytestmark = pytest.mark.usefixtures("one_thread")


def _config(tmp_path, name, budget, **kw):
    return RunConfig(
        algorithm="ns",
        env="hardmaze",
        out=str(tmp_path / name),
        budget=budget,
        env_options={"episode_length": 40},
        **kw,
    )


def _assert_same(a, b):
    names = sorted(p.name for p in (a / "archive").iterdir())
    assert "champions.safetensors" in names
    assert names == sorted(p.name for p in (b / "archive").iterdir())
    for name in names:
        x, y = Archive.load(a / "archive" / name), Archive.load(b / "archive" / name)
        for field in x.field_list:
            assert torch.equal(x.field(field), y.field(field)), (name, field)
    ma = [without_timing(m) for m in read_metrics(a)]
    assert ma == [without_timing(m) for m in read_metrics(b)]


def test_short_run_checkpoints_its_end_and_extends_with_budget(tmp_path, capsys):
    folder = start(_config(tmp_path, "short", 500), progress=False)  # 100 + 2 x 200
    assert [p.name for p in (folder / "checkpoints").iterdir()] == ["000000000500"]
    metrics = (folder / "metrics.jsonl").read_text()
    # never shrink: a budget below what was done is refused and nothing changes
    assert main(["run", "--resume", str(folder), "--budget", "300", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--budget 300" in err and "500 were already done" in err
    assert json.loads((folder / "config.json").read_text())["budget"] == 500
    assert (folder / "metrics.jsonl").read_text() == metrics
    assert main(["run", "--resume", str(folder), "--budget", "700", "--no-progress"]) == 0
    assert json.loads((folder / "config.json").read_text())["budget"] == 700
    assert read_metrics(folder)[-1]["evaluations"] == 700
    _assert_same(start(_config(tmp_path, "straight", 700), progress=False), folder)
    assert main(["inspect", str(folder)]) == 0
    assert "700 / 700" in capsys.readouterr().out


def test_resume_api_budget_on_lockstep_folder(tmp_path):
    folder = start(_config(tmp_path, "lock", 300), seeds=[0, 1], progress=False)
    resume(folder, budget=500, progress=False)
    assert json.loads((folder / "lockstep.json").read_text())["config"]["budget"] == 500
    for seed in (0, 1):
        child = folder / f"seed-{seed}"
        assert json.loads((child / "config.json").read_text())["budget"] == 500
        assert read_metrics(child)[-1]["evaluations"] == 500
    with pytest.raises(ValueError, match="never shrinks"):
        resume(folder, budget=100, progress=False)


def test_corrupt_budget_in_config_is_refused(tmp_path, capsys):
    folder = start(_config(tmp_path, "done", 400), progress=False)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "budget": -5}))
    before = (folder / "archive" / "novelty.safetensors").read_bytes()
    assert main(["run", "--resume", str(folder), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "config.json: budget must be an integer" in err and "got -5" in err
    assert (folder / "archive" / "novelty.safetensors").read_bytes() == before
    assert read_metrics(folder)[-1]["evaluations"] == 400


def test_killed_before_first_checkpoint_resumes_from_zero(tmp_path, monkeypatch):
    calls = []
    evaluate = LocalEvaluator.evaluate

    def dies_at_second_generation(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # what a kill leaves: no checkpoint, no archive
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(LocalEvaluator, "evaluate", dies_at_second_generation)
    with pytest.raises(KeyboardInterrupt):
        start(_config(tmp_path, "killed", 400), progress=False)
    folder = tmp_path / "killed"
    assert (folder / "config.json").is_file() and not (folder / "checkpoints").exists()
    monkeypatch.setattr(LocalEvaluator, "evaluate", evaluate)
    resume(folder, progress=False)
    _assert_same(start(_config(tmp_path, "whole", 400), progress=False), folder)


def test_failed_build_leaves_no_folder(tmp_path, monkeypatch):
    import qd.run

    def broken(configs):
        raise ValueError("cannot build")

    monkeypatch.setattr(qd.run, "_build", broken)
    with pytest.raises(ValueError, match="cannot build"):
        start(_config(tmp_path, "new", 400), progress=False)
    assert not (tmp_path / "new").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="cannot build"):
        start(_config(tmp_path, "empty", 400), seeds=[0, 1], progress=False)
    assert empty.is_dir() and not list(empty.iterdir())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--budget", str(10**20)], "budget must be an integer"),
        (["--workers", "0"], "workers must be > 0"),
        (["--set", "log_every=-1"], "log_every"),
        (["--set", "max_batch=0"], "max_batch"),
        (["--seed", "-1"], "seed must be >= 0"),
    ],
)
def test_bad_cli_values_make_no_folder(tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    assert main(["run", "ns", "--env", "hardmaze", "--out", str(out), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
