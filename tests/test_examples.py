"""The examples of the own-env and Gymnasium paths, run at a tiny budget."""

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    ("script", "args"),
    [
        ("own_env_cli.py", ["--budget", "300", "--out", "run", "--plots", "plots"]),
        ("gym_info_descriptor.py", ["--budget", "300", "--out", "run"]),
    ],
)
def test_example_runs(script, args, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setattr(sys, "argv", [script, *args])
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    assert (tmp_path / "run" / "archive" / "novelty.safetensors").is_file()
    assert "run folder" in capsys.readouterr().out
