"""EvoTorch on qdtorch's batched evaluator.

:class:`EnvProblem` is a vectorised ``evotorch.Problem`` over any registered environment and
policy family: a solution is a policy genome, its objective the episode return (maximised)
and its evaluation data the env's ground-truth behaviour descriptor, so EvoTorch's
``MAPElites`` works on it as well as PGPE, SNES, XNES, CEM, CMA-ES and GA. Evaluation goes
through any object with the interface of :class:`qd.evaluation.LocalEvaluator`
(``evaluate(genomes) -> Outcomes``: the local, lockstep or Ray evaluators)::

    from evotorch.algorithms import PGPE
    from qd.integrations.evotorch import EnvProblem

    problem = EnvProblem("curling", seed=0)
    searcher = PGPE(problem, popsize=200, center_learning_rate=0.1,
                    stdev_learning_rate=0.1, stdev_init=0.5)
    searcher.run(20)

:func:`make_searcher` builds a searcher from an :class:`~qd.integrations.evotorch_search.
EvoTorchConfig`; ``qd run evotorch:PGPE`` drives it ask/tell (see
:mod:`qd.integrations.evotorch_search`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from evotorch import Problem, SolutionBatch
from evotorch.algorithms import CEM, CMAES, PGPE, SNES, XNES, GeneticAlgorithm, MAPElites
from evotorch.operators import GaussianMutation

from qd.evaluation import Outcomes

SEARCHERS = ("PGPE", "SNES", "XNES", "CEM", "CMAES", "GA", "MAPElites")
"""EvoTorch searchers ``qd run evotorch:<NAME>`` knows (case-sensitive, EvoTorch's names)."""


class EnvProblem(Problem):
    """A vectorised EvoTorch problem: maximise the episode return of policy genomes.

    Args:
        env: a registered env name (or anything :func:`envs.make` builds), or a built env.
        policy: the batched policy (default: the papers' MLP of ``qd run ns`` for the env).
        evaluator: anything with ``evaluate(genomes) -> Outcomes`` (default: a
            :class:`~qd.evaluation.LocalEvaluator` on ``device`` seeded with ``seed``).
        seed: seed of the problem's generator (EvoTorch's sampling and operators).
        device: torch device of the solutions.
        env_options: keyword options of :func:`envs.make`.
        init_bound: initial solutions (GA, MAP-Elites populations) are uniform in
            ``[-init_bound, init_bound]``.
        on_evaluated: called as ``on_evaluated(genomes, outcomes)`` after every batch (e.g. to
            record everything evaluated in a :class:`qd.archive.Archive`).

    The evaluation data (``eval_data_length`` = descriptor size) is the ground-truth descriptor
    ``Outcomes.descriptor``; ``last_outcomes`` holds the latest batch's outcomes.
    """

    def __init__(
        self,
        env="curling",
        *,
        policy=None,
        evaluator=None,
        seed: int = 0,
        device: str | torch.device = "cpu",
        env_options: dict | None = None,
        init_bound: float = 1.0,
        on_evaluated: Callable[[torch.Tensor, Outcomes], None] | None = None,
    ) -> None:
        import envs

        if isinstance(env, str):
            env = envs.make(env, **(env_options or {}))
        if policy is None:
            from qd.algorithms import policy_for

            policy = policy_for("ns", env.spec)
        if evaluator is None:
            from qd.evaluation import LocalEvaluator

            evaluator = LocalEvaluator(env, policy, device=device, seed=seed, compile=False)
        if init_bound <= 0:
            raise ValueError(f"init_bound must be > 0, got {init_bound}")
        self.env, self.policy, self.evaluator = env, policy, evaluator
        self.on_evaluated = on_evaluated
        self.last_outcomes: Outcomes | None = None
        super().__init__(
            "max",
            solution_length=policy.genome_size,
            initial_bounds=(-float(init_bound), float(init_bound)),
            dtype=torch.float32,
            device=device,
            eval_data_length=env.spec.descriptor_size,
            seed=int(seed),
            store_solution_stats=False,  # no best/worst copies: checkpoints stay exact
        )

    def _evaluate_batch(self, batch: SolutionBatch) -> None:
        genomes = batch.values.as_subclass(torch.Tensor)
        outcomes = self.evaluator.evaluate(genomes)
        self.last_outcomes = outcomes
        if self.on_evaluated is not None:
            self.on_evaluated(genomes, outcomes)
        batch.set_evals(
            outcomes.fitness.to(batch.device, torch.float32),
            eval_data=outcomes.descriptor.to(batch.device, torch.float32),
        )


def feature_grid(
    env_spec: dict, bins: list[int] | None = None, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """EvoTorch's MAP-Elites hypergrid ``[cells, d, 2]`` over the env's descriptor box.

    ``bins`` per descriptor dimension (default: the env's ``grid_shape``); the outer cells
    extend to infinity like EvoTorch's ``make_feature_grid``, so every descriptor has a cell.
    Cells are in row-major order of the bins, as ``qd.metrics.grid_cells``.
    """
    low, high = env_spec.get("descriptor_low"), env_spec.get("descriptor_high")
    shape = list(bins or env_spec.get("grid_shape") or [])
    if low is None or high is None or not shape:
        raise ValueError(
            f"env {env_spec.get('name', '?')!r} has no descriptor box (descriptor_low/high, "
            "grid_shape): EvoTorch's MAP-Elites needs one"
        )
    if len(shape) != len(low):
        raise ValueError(f"bins {shape} must have one entry per descriptor dimension ({len(low)})")
    axes = []
    for lo, hi, n in zip(low, high, shape, strict=True):
        edges = torch.linspace(float(lo), float(hi), int(n) + 1, dtype=torch.float64)
        edges[0], edges[-1] = -torch.inf, torch.inf
        axes.append(torch.stack([edges[:-1], edges[1:]], 1).float())  # [n, 2]
    mesh = torch.meshgrid(*[torch.arange(len(a)) for a in axes], indexing="ij")
    cells = [axes[d][m.reshape(-1)] for d, m in enumerate(mesh)]  # each [cells, 2]
    return torch.stack(cells, 1).to(device)


def make_searcher(config, problem: EnvProblem, env_spec: dict):
    """The EvoTorch searcher ``config.searcher`` on ``problem`` with ``config``'s settings
    (:class:`~qd.integrations.evotorch_search.EvoTorchConfig`; 0 / ``"default"`` fields take
    the defaults of :data:`~qd.integrations.evotorch_search.DEFAULTS`)."""
    s = config.resolved()
    name = config.searcher
    center = np.zeros(problem.solution_length, dtype=np.float32)
    if name in ("PGPE", "SNES", "XNES"):
        kwargs = {
            "popsize": s["popsize"] or None,
            "center_learning_rate": s["center_learning_rate"] or None,
            "stdev_learning_rate": s["stdev_learning_rate"] or None,
            "stdev_init": s["stdev_init"],
            "center_init": center,
            "optimizer": None if s["optimizer"] == "none" else s["optimizer"],
            "ranking_method": s["ranking_method"],
        }
        if s["stdev_max_change"]:
            kwargs["stdev_max_change"] = s["stdev_max_change"]
        if name == "PGPE":
            return PGPE(problem, **kwargs)
        return (SNES if name == "SNES" else XNES)(problem, **kwargs)
    if name == "CEM":
        return CEM(
            problem,
            popsize=s["popsize"],
            parenthood_ratio=s["parenthood_ratio"],
            stdev_init=s["stdev_init"],
            center_init=center,
            stdev_max_change=s["stdev_max_change"] or None,
        )
    if name == "CMAES":
        return CMAES(
            problem, stdev_init=s["stdev_init"], popsize=s["popsize"] or None, center_init=center
        )
    mutation = GaussianMutation(problem, stdev=s["mutation_stdev"])
    if name == "GA":
        return GeneticAlgorithm(
            problem, operators=[mutation], popsize=s["popsize"], re_evaluate=s["re_evaluate"]
        )
    if name == "MAPElites":
        grid = feature_grid(env_spec, s["bins"] or None, problem.device)
        return MAPElites(
            problem, operators=[mutation], feature_grid=grid, re_evaluate=s["re_evaluate"]
        )
    raise ValueError(f"unknown EvoTorch searcher {name!r}; known: {', '.join(SEARCHERS)}")
