"""Fast start of ``qd --help`` and ``qd inspect RUN`` (no torch import), and progress lines
when output is piped."""

import subprocess
import sys
import time

import pytest

from qd.algorithms import ALGORITHMS, algorithm_names
from qd.catalog import ALGORITHM_NAMES, MAIN_ARCHIVES
from qd.progress import Progress
from qd.run import RunConfig, start


def test_catalog_lists_every_algorithm():
    assert list(ALGORITHM_NAMES) == algorithm_names()
    for name, variant in ALGORITHMS.items():
        assert MAIN_ARCHIVES.get(name, "novelty") == variant.algorithm.main_archive, name


def _modules_after(argv: list[str]) -> set[str]:
    code = (
        "import sys\nfrom qd.cli import main\n"
        f"try:\n    code = main({argv!r})\nexcept SystemExit as e:\n    code = e.code\n"
        "assert not code, code\n"
        "print('MODULES', ' '.join(sorted(sys.modules)), file=sys.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    line = [x for x in out.stderr.splitlines() if x.startswith("MODULES ")][-1]
    return set(line.split()[1:])


def test_help_and_inspect_do_not_import_torch(tmp_path):
    heavy = {"torch", "ribs", "sklearn", "matplotlib", "qd.algorithms", "envs"}
    assert not heavy & _modules_after(["--help"])
    assert not heavy & _modules_after(["run", "--help"])
    folder = start(
        RunConfig(
            algorithm="ns",
            env="hardmaze",
            out=str(tmp_path / "run"),
            budget=300,
            env_options={"episode_length": 20},
        ),
        progress=False,
    )
    assert not heavy & _modules_after(["inspect", str(folder)])
    assert not heavy & _modules_after(["inspect", str(folder), "--json"])
    assert not heavy & _modules_after(["inspect", str(folder), "--top", "3"])
    assert not heavy & _modules_after(["inspect", str(folder), "--top", "3", "--by", "measures[0]"])


def test_piped_progress_every_5_percent_or_30_s(capsys):
    line = {
        "evaluations": 0,
        "coverage": 0.1,
        "coverage_archive": 0.05,
        "max_reward": [0.5],
        "archive_size": 10,
        "evals_per_s": 100.0,
    }
    bar = Progress(5000, 0, 10_000, False)  # log_every above the budget: 5% steps
    for evaluations in range(100, 5001, 100):
        bar.update({**line, "evaluations": evaluations})
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 21 and printed[0].startswith("evaluations 100:")  # first generation
    assert printed[1].startswith("evaluations 300:") and printed[-1].startswith("evaluations 5000:")
    slow = Progress(10**6, 0, 10**6, False, seconds=0.05)
    slow.update({**line, "evaluations": 1})
    slow.update({**line, "evaluations": 2})
    assert capsys.readouterr().out.count("\n") == 1  # the first line only
    time.sleep(0.06)
    slow.update({**line, "evaluations": 3})
    assert "evaluations 3:" in capsys.readouterr().out


@pytest.mark.slow
def test_piped_run_prints_within_30_s(tmp_path):
    """A 5,000-evaluation run piped to a file prints its first line well within 30 s."""
    cmd = [sys.executable, "-m", "qd.cli", "run", "ns", "--env", "hardmaze", "--budget", "5000"]
    cmd += ["--out", str(tmp_path / "run")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    started = time.monotonic()
    first = proc.stdout.readline()
    elapsed = time.monotonic() - started
    proc.kill()
    proc.wait()
    assert first.startswith("evaluations") and elapsed < 30, (first, elapsed)
