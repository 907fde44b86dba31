"""The pyribs pieces the grid baselines share (:mod:`qd.algorithms.baselines`,
:mod:`qd.algorithms.reward_search`): :class:`GridElites`, a pyribs ``GridArchive`` over the
env's ground-truth grid with an exact checkpoint; the checkpoint of pyribs emitters (numpy state
to tensors + JSON, no pickle); the shared config checks; the ``elites``/``best`` archives; and
outcomes as pyribs's numpy inputs. These helpers read pyribs attributes that are not public API
(checked against ribs 0.12).
"""

from __future__ import annotations

import numpy as np
import torch
from ribs.archives import GridArchive
from ribs.emitters import EvolutionStrategyEmitter, GaussianEmitter

from qd.archive import Archive, InsertionRule
from qd.emitters.cma import cma_state, load_cma_state, numpy_tensor, rng_state, set_rng_state
from qd.evaluation import Outcomes

_GRID_FIELDS = ("solution", "objective", "measures", "threshold", "reward_area")


# -- config checks ---------------------------------------------------------------------------
def check_common(config) -> None:
    """Shared config checks: gene bounds and the ground-truth behaviour space."""
    if config.genome_low >= config.genome_high:
        raise ValueError(
            f"genome_low must be < genome_high, got {config.genome_low} >= {config.genome_high}"
        )
    if config.space != "ground_truth":
        raise ValueError(
            f"the baselines work on the env's ground-truth grid: space must be 'ground_truth', "
            f"got {config.space!r}"
        )


def check_positive(config, *names: str) -> None:
    """Raise ValueError unless every field ``names`` of ``config`` is > 0."""
    for name in names:
        value = getattr(config, name)
        if value <= 0:
            raise ValueError(f"{name} must be > 0, got {value}")


# -- numpy state <-> tensors + JSON ----------------------------------------------------------
def emitter_state(emitter, prefix: str, tensors: dict) -> dict:
    """State of a pyribs GaussianEmitter or EvolutionStrategyEmitter (CMA-ES)."""
    if isinstance(emitter, GaussianEmitter):
        return {"kind": "gaussian", "rng": rng_state(emitter._rng)}
    if isinstance(emitter, EvolutionStrategyEmitter):
        return {
            "kind": "es",
            "itrs": int(emitter._itrs),
            "restarts": int(emitter._restarts),
            "ranker_rng": rng_state(emitter._ranker._rng),
            "opt": cma_state(emitter._opt, prefix + "opt.", tensors),
        }
    raise TypeError(f"cannot checkpoint emitter {type(emitter).__name__}")


def load_emitter_state(emitter, prefix: str, tensors: dict, meta: dict) -> None:
    """Inverse of :func:`emitter_state` on an emitter built with the same settings."""
    kind = "gaussian" if isinstance(emitter, GaussianEmitter) else "es"
    if meta["kind"] != kind:
        raise ValueError(f"checkpoint has a {meta['kind']} emitter where a {kind} one is")
    if kind == "gaussian":
        set_rng_state(emitter._rng, meta["rng"])
        return
    emitter._itrs = meta["itrs"]
    emitter._restarts = meta["restarts"]
    set_rng_state(emitter._ranker._rng, meta["ranker_rng"])
    load_cma_state(emitter._opt, prefix + "opt.", tensors, meta["opt"])


# -- the grid --------------------------------------------------------------------------------
class GridElites:
    """A pyribs GridArchive over the env's ground-truth grid, with an exact checkpoint.

    Args:
        solution_dim: genome size.
        env_spec: env spec dict (``grid_shape``, ``descriptor_low``, ``descriptor_high``).
        seed: seed (or SeedSequence) of the archive's generator (``sample_elites``).
    """

    def __init__(self, *, solution_dim: int, env_spec: dict, seed) -> None:
        shape = env_spec.get("grid_shape")
        low, high = env_spec.get("descriptor_low"), env_spec.get("descriptor_high")
        if not shape or low is None or high is None:
            raise ValueError(
                f"env {env_spec.get('name', '?')!r} has no ground-truth grid "
                "(grid_shape, descriptor_low, descriptor_high); the baselines need one"
            )
        if not len(shape) == len(low) == len(high):
            raise ValueError("grid_shape, descriptor_low and descriptor_high differ in length")
        self.archive = GridArchive(
            solution_dim=int(solution_dim),
            dims=[int(s) for s in shape],
            ranges=[(float(a), float(b)) for a, b in zip(low, high, strict=True)],
            seed=seed,
            extra_fields={"reward_area": ((), np.int64)},
        )

    def __len__(self) -> int:
        return len(self.archive)

    def add(self, solution, objective, measures, reward_area) -> dict:
        return self.archive.add(solution, objective, measures, reward_area=reward_area)

    def export(self, archive: Archive) -> None:
        """Make ``archive`` hold the grid's elites, in pyribs's order (ground truth = measures)."""
        data = self.archive.data(["solution", "objective", "measures", "reward_area"])
        archive.clear()
        if len(data["objective"]):
            measures = torch.from_numpy(data["measures"]).float()
            archive.add(
                torch.from_numpy(data["solution"]).float(),
                torch.from_numpy(data["objective"]).float(),
                measures,
                novelty=torch.zeros(len(measures)),
                ground_truth=measures,
                reward_area=torch.from_numpy(data["reward_area"]),
            )

    def state(self, prefix: str, tensors: dict) -> dict:
        """Elites (pyribs order) to ``tensors``; RNG and statistics as JSON meta."""
        grid = self.archive
        data = grid.data([*_GRID_FIELDS, "index"])
        for name in _GRID_FIELDS:
            tensors[f"{prefix}{name}"] = numpy_tensor(data[name])
        tensors[f"{prefix}index"] = numpy_tensor(data["index"].astype(np.int64))
        best = grid.best_elite
        return {
            "rng": rng_state(grid._rng),
            "objective_sum": float(grid._objective_sum),
            "best_index": None if best is None else int(best["index"]),
            "updates": [int(u) for u in grid._store._props["updates"]],
        }

    def load(self, prefix: str, tensors: dict, meta: dict) -> None:
        """Rebuild the grid from :meth:`state`: re-add the elites in their order, then check."""
        grid = self.archive
        grid.clear()
        saved = {name: tensors[f"{prefix}{name}"].numpy() for name in (*_GRID_FIELDS, "index")}
        index = saved["index"]
        # One add per increasing run of cell indices: pyribs appends new cells of a batch in
        # increasing index order, so this reproduces its occupied_list exactly.
        starts = np.concatenate([[0], np.nonzero(np.diff(index) < 0)[0] + 1, [len(index)]])
        for a, b in zip(starts[:-1], starts[1:], strict=True):
            if b > a:
                grid.add(
                    saved["solution"][a:b],
                    saved["objective"][a:b],
                    saved["measures"][a:b],
                    reward_area=saved["reward_area"][a:b],
                )
        now = grid.data([*_GRID_FIELDS, "index"])
        same = np.array_equal(now["index"].astype(np.int64), index) and all(
            np.array_equal(now[name], saved[name]) for name in _GRID_FIELDS
        )
        if not same:
            raise ValueError("the grid archive in the checkpoint did not rebuild identically")
        grid._stats_reset()
        if meta["best_index"] is not None:
            grid._stats_update(
                np.asarray(meta["objective_sum"], dtype=grid.dtypes["objective"]),
                meta["best_index"],
            )
        grid._store._props["updates"] = list(meta["updates"])
        set_rng_state(grid._rng, meta["rng"])


def elites_archive(name: str, genome_size: int, env_spec: dict, device, seed: int) -> Archive:
    """An empty archive of elites over the env's ground truth (``elites``, ``best``)."""
    size = int(env_spec["descriptor_size"])
    return Archive(
        solution_dim=genome_size,
        measure_dim=size,
        ground_truth_dim=size,
        insertion=InsertionRule("all"),
        device=device,
        env_spec=env_spec,
        seed=seed,
        name=name,
    )


def check_measures(measure_dim: int, env_spec: dict) -> None:
    """The grid baselines search the ground truth: its size must match the measures."""
    if int(measure_dim) != int(env_spec["descriptor_size"]):
        raise ValueError(
            f"measure_dim {measure_dim} is not the env's descriptor size "
            f"{env_spec['descriptor_size']} (the baselines use the ground-truth grid)"
        )


def outcome_arrays(outcomes: Outcomes, descriptors: torch.Tensor | None = None):
    """(objective, measures, reward_area) of evaluated outcomes as numpy arrays (pyribs's
    inputs); ``descriptors`` replace the ground truth as measures when given."""
    objective = outcomes.fitness.detach().cpu().double().numpy()
    measures = (outcomes.descriptor if descriptors is None else descriptors).detach().cpu()
    reward_area = outcomes.reward_area.detach().cpu().long().numpy()
    return objective, measures.double().numpy(), reward_area
