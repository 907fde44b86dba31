"""Failures that explain themselves and lose nothing (issue 18, items 7-8): bad values refused
before a folder is made, outputs kept out of run folders, Ctrl-C and a full disk reported in one
line with the run left resumable, a run killed in its final write shown as not finished."""

import errno
import json
import shutil

import pytest

from qd import run_folder
from qd.cli import main
from qd.run import Run, RunConfig, start

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = ["--budget", "300", "--set", "env.episode_length=20", "--set", "pop_size=50"]
SMALL_CHECKPOINTS = [*SMALL, "--set", "checkpoint_every=100", "--no-progress"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("failures") / "run"
    config = RunConfig(
        algorithm="ns",
        env="hardmaze",
        out=str(out),
        budget=300,
        checkpoint_every=100,
        env_options={"episode_length": 20},
        algorithm_config={"pop_size": 50},
    )
    return start(config, progress=False)


def _one_error(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


@pytest.mark.parametrize(
    ("setting", "shown"),
    [
        ("sigma=inf", "sigma"),
        ("novelty_threshold=nan", "novelty_threshold"),
        ("env.episode_length=NaN", "env.episode_length"),
    ],
)
def test_non_finite_settings_are_refused_before_the_folder(tmp_path, capsys, setting, shown):
    out = tmp_path / "run"
    argv = ["run", "ns", "--env", "hardmaze", "--out", str(out), "--set", setting]
    assert main(argv) == 2
    line = _one_error(capsys)
    assert shown in line and "finite" in line
    assert not out.exists()


def test_non_finite_setting_in_config_json_is_refused_on_resume(finished, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(finished, folder)
    config = json.loads((folder / "config.json").read_text())
    config["algorithm_config"]["sigma"] = float("inf")
    (folder / "config.json").write_text(json.dumps(config))
    assert main(["run", "--resume", str(folder), "--no-progress"]) == 2
    line = _one_error(capsys)
    assert "config.json" in line and "sigma" in line and "finite" in line


@pytest.mark.parametrize(
    ("options", "shown"),
    [(["--sample", "0"], "--sample"), (["--index", "0", "--mutants", "0"], "--mutants")],
)
def test_evolvability_counts_must_be_positive(finished, capsys, options, shown):
    assert main(["evolvability", str(finished), *options]) == 2
    assert shown in _one_error(capsys)


@pytest.mark.parametrize(
    "command",
    [
        ["export", "{run}", "--out", "{run}/archive/novelty.safetensors"],
        ["plot", "{run}", "--kind", "coverage", "--out", "{run}/plots/x.png"],
        ["replay", "{run}", "--best", "--out", "{run}/replay.png"],
        ["compare", "{run}", "--out", "{run}/checkpoints/compare.png"],
    ],
)
def test_outputs_inside_a_run_folder_are_refused(finished, capsys, command):
    before = {p: p.read_bytes() for p in finished.rglob("*") if p.is_file()}
    assert main([arg.format(run=finished) for arg in command]) == 2
    line = _one_error(capsys)
    assert "inside the run folder" in line and "--out" in line
    assert {p: p.read_bytes() for p in finished.rglob("*") if p.is_file()} == before


def test_kill_inside_the_final_write_shows_not_finished(finished, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(finished, folder)
    assert main(["inspect", str(folder)]) == 0
    assert "300 / 300\n" in capsys.readouterr().out
    (folder / "finished.json").unlink()  # killed after the archives, before the marker
    assert main(["inspect", str(folder)]) == 0
    assert "300 / 300  (not finished)" in capsys.readouterr().out
    assert main(["run", "--resume", str(folder), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(folder)]) == 0
    assert "(not finished)" not in capsys.readouterr().out


def _fail_second_checkpoint(monkeypatch, error: BaseException) -> None:
    """Make the run's second checkpoint raise ``error`` (as Ctrl-C or a full disk would)."""
    calls = []
    save = Run.save_checkpoint

    def failing(self):
        calls.append(self.evaluations)
        if len(calls) == 2:
            raise error
        return save(self)

    monkeypatch.setattr(Run, "save_checkpoint", failing)


def _resume_equals(folder, finished, capsys) -> None:
    assert main(["run", "--resume", str(folder), "--no-progress"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    for name in ("novelty", "champions", "population"):
        got = (folder / "archive" / f"{name}.safetensors").read_bytes()
        assert got == (finished / "archive" / f"{name}.safetensors").read_bytes(), name


def test_ctrl_c_says_where_the_run_stopped(finished, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "run"
    _fail_second_checkpoint(monkeypatch, KeyboardInterrupt())
    argv = ["run", "ns", "--env", "hardmaze", "--out", str(folder), *SMALL_CHECKPOINTS]
    assert main(argv) == 130
    line = _one_error(capsys)
    assert line.startswith("qd: interrupted after 250 evaluations (last checkpoint at 150)")
    assert line.endswith(f"continue with: qd run --resume {folder}")
    monkeypatch.undo()
    _resume_equals(folder, finished, capsys)


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device", "RUN/checkpoints/.tmp-000000000200"),
        OSError(errno.EACCES, "Permission denied", "RUN/checkpoints/.tmp-000000000200"),
    ],
    ids=["disk-full", "read-only"],
)
def test_failed_write_is_one_line_and_the_run_resumes(
    finished, tmp_path, capsys, monkeypatch, error
):
    folder = tmp_path / "run"
    error.filename = error.filename.replace("RUN", str(folder))
    _fail_second_checkpoint(monkeypatch, error)
    argv = ["run", "ns", "--env", "hardmaze", "--out", str(folder), *SMALL_CHECKPOINTS]
    assert main(argv) == 2
    line = _one_error(capsys)
    assert line.startswith(f"qd: error: {folder}/checkpoints/.tmp-000000000200: {error.strerror}")
    assert f"stays resumable: fix this, then qd run --resume {folder}" in line
    monkeypatch.undo()
    _resume_equals(folder, finished, capsys)


def test_damaged_latest_checkpoint_falls_back_with_a_warning(finished, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(finished, folder)
    state = folder / "checkpoints" / "000000000300" / "state.safetensors"
    data = bytearray(state.read_bytes())
    data[-64:] = bytes(b ^ 0xFF for b in data[-64:])  # garbled RNG state: once resumed silently
    state.write_bytes(bytes(data))
    (folder / "finished.json").unlink()
    assert main(["run", "--resume", str(folder), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"qd: warning: {state}: checksum mismatch" in err
    assert "resuming from the previous one" in err
    assert run_folder.read_metrics(folder)[-1]["evaluations"] == 300
    _resume_equals(folder, finished, capsys)
    assert (folder / "checkpoints" / "damaged-000000000300").is_dir()  # kept, not read


def test_no_readable_checkpoint_is_refused(finished, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(finished, folder)
    for checkpoint in run_folder.checkpoints(folder):
        (checkpoint / "manifest.json").write_text("[]")
    assert main(["run", "--resume", str(folder), "--no-progress"]) == 2
    line = _one_error(capsys)
    assert "manifest.json" in line and "no checkpoint" in line and "is readable" in line


def test_checkpoints_written_before_manifests_still_resume(finished, tmp_path, capsys):
    """A run from before checkpoint manifests (none of its checkpoints has one) resumes; one
    missing manifest among others is damage (see the fallback test above)."""
    folder = tmp_path / "run"
    shutil.copytree(finished, folder)
    for checkpoint in run_folder.checkpoints(folder):
        (checkpoint / "manifest.json").unlink()
    (folder / "finished.json").unlink()
    _resume_equals(folder, finished, capsys)
