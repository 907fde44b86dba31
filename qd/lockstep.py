"""The lockstep loop: several runs' rounds evaluated in one evaluator call per round."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch

from qd.progress import Progress

if TYPE_CHECKING:
    from qd.run_search import Run


def drive(runs: list[Run], *, progress: bool | None = None) -> None:
    """Spend every run's budget in lockstep rounds on the first run's evaluator.

    Each round, every unfinished run asks its genomes; all of them are evaluated in one call
    (each run's rows reset with its own seed), split back and told to their runs, which write
    their metrics lines and checkpoints. Learners that step the env themselves (``interact``)
    take their round one after the other.
    """
    evaluator = runs[0].evaluator
    total = sum(r.config.budget for r in runs)
    done = sum(r.evaluations for r in runs)
    label = f"{len(runs)} seeds" if len(runs) > 1 else ""
    bar = Progress(total, done, runs[0].config.log_every, progress, label=label)
    metrics = [open(r.folder / "metrics.jsonl", "a") for r in runs]  # noqa: SIM115
    started, last = time.perf_counter(), [None] * len(runs)
    try:
        while active := [i for i, r in enumerate(runs) if not r.finished]:
            asking = [i for i in active if not runs[i].interacts]
            for i in set(active) - set(asking):
                last[i] = runs[i].interact()
                runs[i].record(last[i], metrics[i])
            if asking:
                genomes = [runs[i].ask() for i in asking]
                recordings = runs[asking[0]].recordings
                counts = [len(g) for g in genomes]
                seeds = [(n, runs[i].config.seed) for n, i in zip(counts, asking, strict=True)]
                start = time.perf_counter()
                outcomes = evaluator.evaluate(torch.cat(genomes), seeds=seeds, **recordings)
                outcomes.fitness.sum().item()  # wait for the device before timing
                elapsed = time.perf_counter() - start
                offset = 0
                for i, rows, n in zip(asking, genomes, counts, strict=True):
                    part = outcomes.select(slice(offset, offset + n))
                    offset += n
                    last[i] = runs[i].tell(rows, part, elapsed * n / max(1, sum(counts)))
                    runs[i].record(last[i], metrics[i])
            bar.update(_round_summary(runs, last, time.perf_counter() - started, done))
    finally:
        for handle in metrics:
            handle.close()
        bar.close()


def _round_summary(runs: list[Run], last: list, elapsed: float, done_before: int) -> dict:
    """One progress line for all runs: summed evaluations, mean coverage, best rewards."""
    lines = [line for line in last if line is not None]
    if len(runs) == 1:
        return lines[0]
    evaluations = sum(r.evaluations for r in runs)
    rewards = [line["max_reward"] for line in lines]
    returns = [line.get("max_return") for line in lines]
    return {
        "evaluations": evaluations,
        "coverage": sum(line["coverage"] for line in lines) / len(lines),
        "coverage_archive": sum(line["coverage_archive"] for line in lines) / len(lines),
        "archive_size": sum(line["archive_size"] for line in lines) // len(lines),
        "max_reward": [max(v) for v in zip(*rewards, strict=True)] if rewards else [],
        "max_return": max((x for x in returns if x is not None), default=None),
        "evals_per_s": (evaluations - done_before) / max(elapsed, 1e-9),
    }
