"""TensorBoard events of a run (``qd run --tensorboard``) and of ``qd export --format tensorboard``,
read back with TensorBoard's own reader."""

import json
import sys

import pytest

from qd.cli import main
from qd.run import RunConfig, start
from qd.run_folder import read_metrics
from qd.tensorboard import scalars


def _events(folder):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    return acc


def _tiny(out, **extra):
    settings = dict(budget=900, env_options={"episode_length": 50}, checkpoint_every=400)
    return RunConfig(algorithm="ns", env="curling", out=str(out), seed=1, **{**settings, **extra})


def test_scalars_flatten_lists_and_skip_the_rest():
    line = {"evaluations": 5, "coverage": 0.5, "max_reward": [0.1, 0.2], "phase": "explore"}
    line.update(max_return=None, ok=True, nested={"a": 1})
    assert dict(scalars(line)) == {
        "coverage": 0.5,
        "max_reward/0": 0.1,
        "max_reward/1": 0.2,
        "ok": 1.0,
        "nested/a": 1.0,
    }


def test_run_streams_scalars_and_heatmaps(tmp_path):
    pytest.importorskip("tensorboard")
    run = start(_tiny(tmp_path / "run", tensorboard=True), progress=False)
    assert json.loads((run / "config.json").read_text())["tensorboard"] is True
    acc = _events(run / "tensorboard")
    lines = read_metrics(run)
    tags = acc.Tags()
    assert {"coverage", "archive_size", "max_reward/0", "qd_score"} <= set(tags["scalars"])
    coverage = acc.Scalars("coverage")
    assert [e.step for e in coverage] == [line["evaluations"] for line in lines]
    assert [e.value for e in coverage] == pytest.approx([line["coverage"] for line in lines])
    assert {"archive/reward", "archive/count"} <= set(tags["images"])
    images = acc.Images("archive/reward")
    assert [e.step for e in images] == [500, 900]  # checkpoints (the last one at the end)
    assert images[-1].width > 100 and images[-1].height > 100


def test_export_run_and_lockstep(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    run = start(_tiny(tmp_path / "plain"), progress=False)
    assert not (run / "tensorboard").exists()
    out = tmp_path / "tb"
    assert main(["export", str(run), "--format", "tensorboard", "--out", str(out)]) == 0
    acc = _events(out)
    assert len(acc.Scalars("coverage")) == len(read_metrics(run))
    # the checkpoints kept on disk (2) plus the final archive (at the last checkpoint)
    assert [e.step for e in acc.Images("archive/count")] == [500, 900]
    assert main(["export", str(run), "--format", "tensorboard", "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err

    seeds = start(_tiny(tmp_path / "seeds", budget=300), seeds=[0, 1], progress=False)
    out = tmp_path / "tb-seeds"
    assert main(["export", str(seeds), "--format", "tensorboard", "--out", str(out)]) == 0
    for seed in (0, 1):
        lines = read_metrics(seeds / f"seed-{seed}")
        assert len(_events(out / f"seed-{seed}").Scalars("max_return")) == len(lines)


def test_missing_tensorboard_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    out = tmp_path / "run"
    code = main(
        ["run", "ns", "--env", "curling", "--budget", "200", "--out", str(out)]
        + ["--tensorboard", "--no-progress"]
    )
    assert code == 2
    assert "pip install 'qdtorch[tensorboard]'" in capsys.readouterr().err
    assert not out.exists()  # refused before the run folder is written
    code = main(["export", str(tmp_path), "--format", "tensorboard"])
    assert code == 2 and "qdtorch[tensorboard]" in capsys.readouterr().err


def test_resume_replaces_the_events_after_its_checkpoint(tmp_path):
    """A run resumed from an earlier checkpoint writes its later steps once, not twice."""
    import shutil

    from qd.run import resume

    pytest.importorskip("tensorboard")
    run = start(_tiny(tmp_path / "run", tensorboard=True), progress=False)
    shutil.rmtree(run / "checkpoints" / f"{900:012d}")  # as if killed before it was written
    resume(run, progress=False)
    coverage = _events(run / "tensorboard").Scalars("coverage")
    lines = read_metrics(run)
    assert [e.step for e in coverage] == [line["evaluations"] for line in lines]
    assert [e.value for e in coverage] == pytest.approx([line["coverage"] for line in lines])
