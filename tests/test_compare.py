import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "compare.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_compare", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_runs_table_and_resumes(tmp_path, capsys):
    compare = _load()
    argv = ["--algorithms", "ns", "random", "--envs", "curling", "--seeds", "0", "1"]
    argv += ["--budget", "300", "--out", str(tmp_path)]
    argv += ["--set", "env.episode_length=40", "--set", "checkpoint_every=100"]
    # first pass: two runs at a time, each in its own process (as a user runs the script)
    done = subprocess.run(
        [sys.executable, str(BENCH), *argv, "--jobs", "2"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count(": ran") == 2  # one lockstep group per algorithm
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["curling"]) == {"ns", "random"}
    assert results["curling"]["ns"]["evaluations"] == [300, 300]
    assert (tmp_path / "curling.png").exists() and "| ns |" in (tmp_path / "results.md").read_text()
    # an interrupted run (no final archives, last checkpoint lost) resumes; the rest is skipped
    cut = tmp_path / "curling" / "ns" / "seed-1"
    shutil.rmtree(cut / "archive")
    shutil.rmtree(sorted((cut / "checkpoints").iterdir())[-1])
    capsys.readouterr()
    assert compare.main(argv) == 0
    log = capsys.readouterr().out
    assert "ns seeds [0, 1]: resumed" in log and log.count("skipped") == 1
    again = json.loads((tmp_path / "results.json").read_text())
    assert (
        again["curling"]["ns"]["max_reward_per_seed"]
        == results["curling"]["ns"]["max_reward_per_seed"]
    )
