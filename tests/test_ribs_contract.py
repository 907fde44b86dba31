"""Our Archive works where pyribs expects an archive: schedulers, emitters, rankers, visualize."""

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
from ribs.emitters import EvolutionStrategyEmitter, GaussianEmitter  # noqa: E402
from ribs.schedulers import Scheduler  # noqa: E402
from ribs.visualize import archive_histogram, proximity_archive_plot  # noqa: E402

from qd.archive import Archive, InsertionRule  # noqa: E402


def _sphere(solutions):
    objective = -np.sum(solutions**2, axis=1)
    measures = solutions[:, :2]
    return objective, measures


def test_scheduler_with_gaussian_emitter():
    archive = Archive(
        solution_dim=4,
        measure_dim=2,
        k_neighbors=3,
        seed=0,
        insertion=InsertionRule("threshold", threshold=0.05),
    )
    emitter = GaussianEmitter(archive, sigma=0.1, x0=np.zeros(4), batch_size=16, seed=1)
    scheduler = Scheduler(archive, [emitter])
    for _ in range(10):
        solutions = scheduler.ask()
        scheduler.tell(*_sphere(solutions))
    assert 16 < len(archive) < 160
    assert archive.stats.num_elites == len(archive)


def test_es_emitter_with_novelty_ranker():
    archive = Archive(
        solution_dim=4,
        measure_dim=2,
        k_neighbors=3,
        seed=0,
        insertion=InsertionRule("threshold", threshold=0.01),
    )
    emitter = EvolutionStrategyEmitter(
        archive, x0=np.zeros(4), sigma0=0.2, ranker="nov", batch_size=12, seed=2
    )
    scheduler = Scheduler(archive, [emitter])
    spread = []
    for _ in range(15):
        solutions = scheduler.ask()
        scheduler.tell(*_sphere(solutions))
        spread.append(np.ptp(archive.data("measures"), axis=0).sum())
    assert spread[-1] > spread[0]  # novelty ranking pushes the measures outward


def test_visualize_accepts_archive():
    archive = Archive(solution_dim=2, measure_dim=2, seed=0)
    archive.add(
        np.random.default_rng(0).random((20, 2)),
        np.arange(20.0),
        np.random.default_rng(1).random((20, 2)),
    )
    proximity_archive_plot(archive)
    archive_histogram(archive)
