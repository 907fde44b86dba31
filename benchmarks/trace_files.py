"""Which files of ``qd/`` and ``envs/`` run during one NS generation, one SERENE emitter
generation and one TAXONS retraining (the claims of docs/architecture.md), with the functions
entered in each. Run by hand (about a minute on a CPU), not in CI:

    python benchmarks/trace_files.py
"""

from __future__ import annotations

import collections
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import qd
from qd.run_config import RunConfig, parse_overrides
from qd.run_search import Run

ROOT = Path(qd.__file__).resolve().parent.parent


def traced(fn: Callable) -> tuple[object, dict[str, set[str]]]:
    """``fn()`` and ``{file: functions}`` of every qd/ or envs/ function it entered."""
    calls: dict[str, set[str]] = collections.defaultdict(set)

    def profile(frame, event, _arg) -> None:
        if event != "call":
            return
        try:
            rel = Path(frame.f_code.co_filename).resolve().relative_to(ROOT)
        except ValueError:
            return
        if rel.parts[0] in ("qd", "envs"):
            calls[str(rel)].add(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        result = fn()
    finally:
        sys.setprofile(None)
    return result, calls


def show(title: str, calls: dict[str, set[str]]) -> None:
    print(f"\n== {title}: {len(calls)} files")
    for name in sorted(calls):
        functions = sorted(f for f in calls[name] if not f.startswith("<"))
        print(f"  {name}: {', '.join(functions)}")


def make_run(out: Path, algorithm: str, env: str, settings: list[str]) -> Run:
    config = RunConfig(algorithm=algorithm, env=env, budget=100_000, out=str(out), compile=False)
    return Run(parse_overrides(config, settings))


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    run = make_run(tmp / "ns", "ns", "hardmaze", ["env.episode_length=50"])
    run.step()  # the random initial population
    _, calls = traced(run.step)
    show("NS generation (Run.step, 2nd generation)", calls)

    run = make_run(tmp / "serene", "serene", "curling", ["chunk_size=400"])
    previous = None
    for _ in range(1000):
        line, calls = traced(run.step)
        if line["phase"] == "run" and previous == "run":  # an emitter that was already running
            break
        previous = line["phase"]
    else:
        raise SystemExit("no emitter generation within 1000 steps")
    show("SERENE emitter generation (Run.step, the running emitter's next generation)", calls)

    settings = ["env.episode_length=50", "pop_size=20", "ae_max_epochs=2"]
    run = make_run(tmp / "taxons", "taxons", "hardmaze", settings)
    run.step()
    run.step()
    _, calls = traced(run.algorithm.retrain)
    show("TAXONS retraining (Taxons.retrain)", calls)


if __name__ == "__main__":
    main()
