import json

import pandas as pd
import pytest

from qd.archive import Archive
from qd.cli import build_parser, main
from qd.run import RunConfig, start


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "tiny"
    config = RunConfig(
        algorithm="ns",
        env="hardmaze",
        out=str(out),
        budget=900,
        env_options={"episode_length": 300},
        seed=1,
    )
    return start(config, progress=False)


def _listing(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*"))


@pytest.mark.parametrize("kind", ["coverage", "reward", "descriptors", "heatmap", "novelty"])
def test_plot_kinds(run, tmp_path, kind):
    before = _listing(run)
    out = tmp_path / f"{kind}.png"
    assert main(["plot", str(run), "--kind", kind, "--out", str(out)]) == 0
    assert out.stat().st_size > 5000
    assert _listing(run) == before  # nothing written inside the run folder


def test_plot_lambda_missing(run, tmp_path, capsys):
    assert main(["plot", str(run), "--kind", "lambda", "--out", str(tmp_path / "l.png")]) == 2
    assert "no lambda" in capsys.readouterr().err


def test_inspect_top_and_archive_file(run, capsys):
    assert main(["inspect", str(run), "--top", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert len(rows) == 3 and rows[0]["objective"] >= rows[-1]["objective"]
    assert main(["inspect", str(run / "archive" / "novelty.safetensors"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    # 5 offspring archived per generation, 4 generations after the initial one (not archived)
    assert info["size"] == 20 and info["env"] == "hardmaze" and "max_reward_per_area" in info


def test_export_csv_and_parquet(run, tmp_path):
    csv = tmp_path / "a.csv"
    assert main(["export", str(run), "--format", "csv", "--out", str(csv)]) == 0
    frame = pd.read_csv(csv)
    assert len(frame) == 20 and {"objective", "ground_truth_0", "solution_62"} <= set(frame)
    parquet = tmp_path / "a.parquet"
    assert (
        main(
            [
                "export",
                str(run),
                "--format",
                "parquet",
                "--archive",
                "population",
                "--out",
                str(parquet),
            ]
        )
        == 0
    )
    assert len(pd.read_parquet(parquet)) == 100


def test_replay_matches_then_detects_tampering(run, tmp_path, capsys):
    out = tmp_path / "r.png"
    assert main(["replay", str(run), "--best", "--out", str(out), "--gif", "--frames", "5"]) == 0
    assert out.stat().st_size > 5000 and out.with_suffix(".gif").stat().st_size > 1000
    assert "matches" in capsys.readouterr().out
    archive = Archive.load(run / "archive" / "novelty.safetensors")
    archive.field("solution")[0] += 0.5  # a different genome under the stored outcome
    tampered = archive.save(tmp_path / "tampered.safetensors")
    assert main(["replay", str(tampered), "--index", "0", "--out", str(tmp_path / "t.png")]) == 1
    assert "MISMATCH" in capsys.readouterr().err


def test_compare_groups_runs(run, tmp_path, capsys):
    out = tmp_path / "c.png"
    assert main(["compare", str(run), str(run), "--metric", "coverage", "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    label = "ns on hardmaze (env.episode_length=300)"
    assert result["groups"][label]["runs"] == 2 and out.stat().st_size > 5000


def test_compare_keeps_env_settings_apart(run, tmp_path, capsys):
    other = start(
        RunConfig(
            algorithm="ns",
            env="hardmaze",
            out=str(tmp_path / "short"),
            budget=400,
            env_options={"episode_length": 50},
        ),
        progress=False,
    )
    capsys.readouterr()  # the run's log lines
    out = tmp_path / "c.png"
    assert main(["compare", str(run), str(other), "--out", str(out)]) == 0
    groups = json.loads(capsys.readouterr().out)["groups"]
    assert sorted(groups) == [
        "ns on hardmaze (env.episode_length=300)",
        "ns on hardmaze (env.episode_length=50)",
    ]


def test_evolvability(run, capsys):
    assert main(["evolvability", str(run), "--index", "0", "--mutants", "50", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    row = result["individuals"][0]
    assert 0 < row["coverage"] <= 50 / 2500 and 0 <= row["uniformity"] <= 1


def test_bad_paths(tmp_path, capsys):
    for argv in (
        ["inspect", str(tmp_path / "nope")],
        ["plot", str(tmp_path / "nope")],
        ["replay", str(tmp_path / "nope"), "--best"],
        ["export", str(tmp_path / "nope")],
    ):
        assert main(argv) != 0
        assert "nope" in capsys.readouterr().err
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 40)
    assert main(["inspect", str(tmp_path / "junk.safetensors")]) == 2
    assert "junk.safetensors" in capsys.readouterr().err


def test_bad_archive_name(run, capsys):
    assert main(["export", str(run), "--archive", "reward"]) == 2
    assert "no archive named 'reward'" in capsys.readouterr().err


def test_every_command_has_help_with_example():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert p.epilog and "example" in p.epilog, name
    with pytest.raises(SystemExit) as exit_info:
        main(["replay", "--help"])
    assert exit_info.value.code == 0
